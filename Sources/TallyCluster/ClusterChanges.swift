public import TallyAPI
public import TallyEngine

extension ClusterNode {
    /// Changes asked of each partition per page of the cluster's feed.
    static let changesPerPartition = 1_000

    /// L2 across the cluster (K4): up to `limit` score changes after `position`, in stream order — every
    /// partition's positions are stream sequences, one order for the whole cluster. The stream's last sequence is
    /// read first; every partition answers once its copy and fold have reached it (settled), with its changes
    /// through it, so that no change before the page's end can still come; a partition whose answer may go on
    /// (it had more than it was asked for) ends the page at its last change. `rebuild` is the latest `rebuild` event
    /// any partition was rebuilt for. When nothing is new, the page goes on from the stream's last sequence.
    public func changes(
        after position: ChangePosition, limit: Int
    ) async throws -> (changes: [ChangeDocument], next: ChangePosition, rebuild: UInt64?) {
        guard (1...TallyEngine.maximumChanges).contains(limit) else {
            throw EngineError(.invalid, "\"limit\" must be 1–\(TallyEngine.maximumChanges)", field: "limit")
        }
        let horizon = try await reachingTheCluster { try await clusterLog.lastSequence() }
        let answers = try await gather(
            PartitionQuery(
                kind: .changes, settled: true, limit: min(limit, Self.changesPerPartition),
                after: position.description, through: horizon))
        let page = Self.page(of: answers.map { ($0.changes ?? [], $0.changesCut == true) }, limit: limit)
        let next =
            page.last?.position
            ?? (Self.precedes(position, ChangePosition(seq: horizon)) ? ChangePosition(seq: horizon) : position)
        return (page, next, answers.compactMap(\.changesRebuild).max())
    }

    /// One page of the cluster's feed from the partitions' answers, each its changes in order after the same
    /// position and whether it may go on after them (`cut`): the answers' changes in position order, ending at the
    /// earliest last change of an answer that may go on (a change after it could follow one that answer left out),
    /// at most `limit` of them.
    static func page(of answers: [(changes: [ChangeDocument], cut: Bool)], limit: Int) -> [ChangeDocument] {
        var end: ChangePosition?
        for answer in answers where answer.cut {
            guard let last = answer.changes.last?.position else { continue }
            if end.map({ precedes(last, $0) }) ?? true { end = last }
        }
        var changes = answers.flatMap(\.changes)
        changes.sort { precedes($0.position, $1.position) }
        if let end { changes.removeAll { precedes(end, $0.position) } }
        return Array(changes.prefix(limit))
    }

    /// Whether feed position `a` comes before `b` (a position without an index is after every change of its event).
    static func precedes(_ a: ChangePosition, _ b: ChangePosition) -> Bool {
        (a.seq, a.index ?? .max) < (b.seq, b.index ?? .max)
    }
}
