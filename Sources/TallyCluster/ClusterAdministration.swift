import Crypto
import Foundation
public import TallyAPI
import TallyCore
public import TallyEngine
public import TallyNATS

/// The administrative operations that concern every partition (K4): rules publications and rebuilds (A3, A4) and
/// clock events (D1) published to every partition; the rules versions, the clock, the rebuilds and the outbox read
/// from every partition's holder (``PartitionQuery``) and put together.
extension ClusterNode {
    /// Subject on which `node` answers ``PartitionQuery``s for the partitions it holds.
    static func partitionsSubject(_ node: String) -> String { "tally.node.\(node).partitions" }

    /// A3 through the API: publishes a validated rules text to every partition as the next version, under the
    /// cluster's rules lock (so that every partition numbers publications alike), after completing a publication
    /// that an earlier publisher left unfinished. Returns the version.
    public func publishRules(text: String, source: String) async throws -> RulesVersionInfo {
        try await underRulesLock { published, _ in
            let version = published + 1
            let event = Event(type: .rulesPublished, contact: "", at: wallClockMillis(), reason: source, text: text)
            let acks = try await reachingTheCluster {
                try await clusterLog.broadcast(
                    event, to: 0..<settings.partitions, messageID: Self.publicationID(version: version, text: text))
            }
            logger.info(
                "rules published to every partition",
                metadata: ["tally.source": "\(source)", "tally.rules_version": "\(version)"])
            return RulesVersionInfo(
                version: version, seq: acks.map(\.sequence).max() ?? 0, publishedAt: event.at, source: source,
                text: text)
        }
    }

    /// A4 through the API: publishes a `rebuild` event for rules `version` (by default the version in force) to
    /// every partition; each partition's holder rebuilds its projections when it folds it. Refused while a
    /// partition is rebuilding. Returns the stream sequence of the last copy, the version and the event's `at`, which
    /// each partition's progress names (``RebuildProgress/requestedAt``).
    public func requestRebuild(version: Int64?) async throws -> (seq: UInt64, version: Int64, requestedAt: Int64) {
        try await underRulesLock { published, answers in
            let inForce = Set(answers.map { $0.versionInForce ?? 0 })
            guard let current = inForce.first, inForce.count == 1 else {
                throw EngineError(
                    .conflict,
                    "the partitions are under different rules versions (\(inForce.sorted())): a rebuild request did "
                        + "not reach every partition; request it again with a version")
            }
            let version = version ?? current
            try TallyEngine.checkRulesVersion(version, published: published)
            let running = answers.filter { answer in
                answer.rebuild.map { $0.phase == .replaying || $0.phase == .switching } == true
            }.map(\.partition)
            guard running.isEmpty else {
                throw EngineError(
                    .conflict, "partitions \(running) are rebuilding; wait for them to finish (GET /v1/rebuild)")
            }
            let event = Event(type: .rebuild, contact: "", at: wallClockMillis(), value: version)
            let acks = try await reachingTheCluster {
                try await clusterLog.broadcast(
                    event, to: 0..<settings.partitions, messageID: "rebuild-\(UUID().uuidString)")
            }
            logger.info("rebuild requested in every partition", metadata: ["tally.rules_version": "\(version)"])
            return (acks.map(\.sequence).max() ?? 0, version, event.at)
        }
    }

    /// Runs `body` under the cluster's rules lock with the number of rules versions every partition holds and the
    /// partitions' rules answers. Before it, a publication that did not reach every partition (its publisher died
    /// half-way) is completed: the partitions that lack a version get it, from a partition that has it, in order.
    private func underRulesLock<T: Sendable>(
        _ body: (_ published: Int64, _ answers: [PartitionAnswer]) async throws -> T
    ) async throws -> T {
        guard let revision = try await leases.lock("rules", timeout: settings.leaseTime) else {
            throw EngineError(.conflict, "another node is publishing rules or requesting a rebuild; try again")
        }
        do {
            var answers = try await gather(PartitionQuery(kind: .rules, settled: true))
            var counts = answers.map { Int64($0.rules?.count ?? 0) }
            if let most = counts.max(), let least = counts.min(), least < most {
                for version in (least + 1)...most {
                    try await complete(version: version, in: answers)
                }
                answers = try await gather(PartitionQuery(kind: .rules, settled: true))
                counts = answers.map { Int64($0.rules?.count ?? 0) }
                guard Set(counts).count == 1 else {
                    throw EngineError(.unavailable, "the partitions' rules versions could not be completed; try again")
                }
            }
            let result = try await body(counts.first ?? 0, answers)
            await leases.unlock("rules", revision: revision)
            return result
        } catch {
            await leases.unlock("rules", revision: revision)
            throw error
        }
    }

    /// Publishes rules version `version`, as a partition that has it holds it, to the partitions that lack it.
    private func complete(version: Int64, in answers: [PartitionAnswer]) async throws {
        let lacking = answers.filter { Int64($0.rules?.count ?? 0) < version }.map(\.partition)
        let texts = try await gather(PartitionQuery(kind: .rules, settled: true, version: version))
        guard let info = texts.lazy.compactMap({ $0.rules?.first { $0.version == version && !$0.text.isEmpty } }).first
        else { return }
        let event = Event(
            type: .rulesPublished, contact: "", at: info.publishedAt, reason: info.source, text: info.text)
        _ = try await reachingTheCluster {
            try await clusterLog.broadcast(
                event, to: lacking, messageID: Self.publicationID(version: version, text: info.text))
        }
        logger.warning(
            "an unfinished rules publication completed",
            metadata: ["tally.rules_version": "\(version)", "tally.partitions": "\(lacking)"])
    }

    /// Runs `work` against NATS; its failure (the servers unreachable, a stream electing a leader) as a 503.
    func reachingTheCluster<T: Sendable>(_ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as NATSError {
            throw EngineError(.unavailable, "the cluster does not answer now (\(error)); try again")
        }
    }

    /// Whether `a` comes before `b` in the byte order of their UTF-8 (the stores' order of outbox keys).
    static func bytesPrecede(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// The message id of rules version `version` with `text`: the same for a retry of it, and for its completion.
    private static func publicationID(version: Int64, text: String) -> String {
        "rules-v\(version)-" + SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// D1 in a cluster: a clock event at `at` (the wall time when nil) published to every partition.
    public func tick(at: Int64? = nil) async throws -> [PublishAck] {
        let event = try TallyEngine.clockEvent(at: at)
        return try await reachingTheCluster {
            try await clusterLog.broadcast(
                event, to: 0..<settings.partitions, messageID: "clock-\(UUID().uuidString)")
        }
    }

    /// The rules versions every partition holds (text only for `version`), and the version in force in each.
    public func rulesVersions(
        withText version: Int64? = nil
    ) async throws -> (
        versions: [RulesVersionInfo], inForce: Int64
    ) {
        let answers = try await gather(PartitionQuery(kind: .rules, settled: true, version: version))
        let counts = Set(answers.map { $0.rules?.count ?? 0 })
        let inForce = Set(answers.map { $0.versionInForce ?? 0 })
        guard counts.count == 1, inForce.count == 1, let first = answers.first else {
            throw EngineError(
                .unavailable,
                "the partitions hold different rules versions (\(counts.sorted()) published, \(inForce.sorted()) in "
                    + "force): a publication or rebuild is under way, or one did not finish (publishing again "
                    + "completes it)")
        }
        return (first.rules ?? [], first.versionInForce ?? 0)
    }

    /// A4's dry run across the partitions: each partition's copy folded under rules `version` (by default the
    /// version in force) and compared with its projections, the reports added up — counts and totals summed, the
    /// changes and the contacts newly reaching triggers merged in id order, at most 10,000 of each as on a single
    /// node. Its `checkpoint` is 0: each partition compares at its own.
    public func previewRebuild(version: Int64?) async throws -> RebuildPreview {
        var inForce: Int64 = 0
        if version == nil { inForce = try await rulesVersions().inForce }
        let version = version ?? inForce
        let (answers, cut) = try await gatherWithCut(PartitionQuery(kind: .preview, version: version))
        let previews = answers.compactMap(\.preview)
        func kept(_ contact: String) -> Bool { cut.map { !Self.bytesPrecede($0, contact) } ?? true }
        return RebuildPreview(
            rulesVersion: version, checkpoint: 0, contacts: previews.map(\.contacts).reduce(0, +),
            changed: previews.map(\.changed).reduce(0, +), oldTotal: previews.map(\.oldTotal).reduce(0, &+),
            newTotal: previews.map(\.newTotal).reduce(0, &+),
            changes: Array(
                previews.flatMap(\.changes).filter { kept($0.contact) }.sorted {
                    Self.bytesPrecede($0.contact, $1.contact)
                }
                .prefix(Self.previewLimit)),
            newlyReached: previews.map(\.newlyReached).reduce(0, +),
            reached: Array(
                previews.flatMap(\.reached).filter { kept($0.contact) }.sorted {
                    Self.bytesPrecede($0.contact, $1.contact)
                }
                .prefix(Self.previewLimit)))
    }

    /// The most changes, and contacts newly reaching triggers, a dry run lists (as a single node's).
    static let previewLimit = 10_000

    /// Each partition's rebuild in progress or last finished (nil: none since its holder started).
    public func rebuilds() async throws -> [(partition: Int, progress: RebuildProgress?)] {
        try await gather(PartitionQuery(kind: .rules, settled: false)).map { ($0.partition, $0.rebuild) }
    }

    /// D1 across the partitions: the earliest partition's now (a clock event not folded everywhere yet is not now),
    /// the awards waiting to age in all of them, and the first one due.
    public func clockState(settled: Bool) async throws -> (now: Int64?, aging: Int, nextDue: Int64?) {
        let clocks = try await gather(PartitionQuery(kind: .clock, settled: settled)).compactMap(\.clock)
        let now = clocks.contains { $0.now == nil } ? nil : clocks.compactMap(\.now).min()
        return (now, clocks.map(\.aging).reduce(0, +), clocks.compactMap(\.nextDue).min())
    }

    /// The outbox entries of every partition in key order (T6), only those in `state` when given, at most `limit`.
    public func outboxEntries(state: String?, limit: Int) async throws -> [OutboxItem] {
        let (answers, cut) = try await gatherWithCut(PartitionQuery(kind: .outbox, state: state, limit: limit))
        let entries = answers.flatMap { $0.outbox ?? [] }.filter { entry in
            cut.map { !Self.bytesPrecede($0, entry.key) } ?? true
        }
        return Array(entries.sorted { Self.bytesPrecede($0.key, $1.key) }.prefix(limit))
    }

    /// L1 across the partitions: one page of the contacts matching `query`, merged from each partition's page in
    /// the list's order (``TallyEngine/mergeListPages(_:query:position:)``); its `next` goes on from where the
    /// partitions' pages leave it.
    public func listContacts(_ query: ContactListQuery) async throws -> ContactListDocument {
        guard (1...ContactListQuery.maximumLimit).contains(query.limit) else {
            throw EngineError(.invalid, "\"limit\" must be 1–\(ContactListQuery.maximumLimit)", field: "limit")
        }
        let answers = try await gather(PartitionQuery(kind: .list, list: query))
        let pages = answers.map { ($0.list?.items ?? [], $0.list?.next) }
        let (items, next) = try TallyEngine.mergeListPages(pages, query: query) { item in
            (Self.listScore(item, query), item.contact)
        }
        return ContactListDocument(contacts: items, next: next)
    }

    /// The score a list orders `item` by: its group's score with a group, its points without, none in the id order.
    /// L3 across the cluster: the distribution of the list's score over every partition — the span of their lowest
    /// to highest score first, then each partition's counts in the same buckets of that span, added up. (A single
    /// node with membership filters spans its members' scores; the cluster spans every score within the bounds.)
    public func scoreHistogram(_ query: ContactListQuery) async throws -> ScoreHistogram {
        var histogram = ScoreHistogram(group: query.group, buckets: [], examined: 0)
        let bounds = try await gather(PartitionQuery(kind: .scoreBounds, list: query)).compactMap(\.bounds)
        guard let low = bounds.map({ $0[0] }).min(), let high = bounds.map({ $0[1] }).max() else { return histogram }
        for answer in try await gather(PartitionQuery(kind: .histogram, list: query, span: [low, high])) {
            guard let part = answer.histogram else { continue }
            if histogram.buckets.isEmpty {
                histogram.buckets = part.buckets.map { .init(low: $0.low, high: $0.high, count: 0, complete: true) }
            }
            for (index, bucket) in part.buckets.enumerated() where index < histogram.buckets.count {
                histogram.buckets[index].count += bucket.count
                histogram.buckets[index].complete = histogram.buckets[index].complete && bucket.complete
            }
            histogram.examined += part.examined
        }
        return histogram
    }

    static func listScore(_ item: ContactListDocument.Item, _ query: ContactListQuery) -> Int64? {
        query.sort == .id ? nil : query.group.map { item.groups[$0] ?? 0 } ?? item.points
    }

    /// Retries an outbox entry by hand in the partition that has it (an `outbox.retried` event in that partition).
    public func retryOutbox(key: String) async throws -> OutboxItem {
        let answers = try await gather(PartitionQuery(kind: .retry, key: key))
        if let retried = answers.lazy.compactMap(\.retried).first { return retried }
        if let failure = answers.lazy.compactMap(\.failure).first(where: { $0.error.kind != .notFound }) {
            throw failure.error
        }
        throw EngineError(.notFound, "no outbox entry \"\(key)\"")
    }

    /// The answers of every partition's holder to `query`, one per partition in partition order; throws when a
    /// partition has no answer (it is moving between nodes), or when one failed for a reason other than not
    /// having what a retry names.
    func gather(_ query: PartitionQuery) async throws -> [PartitionAnswer] {
        try await gatherWithCut(query).answers
    }

    /// A5 across the cluster (K4, `POST /v1/verify`): every partition settled at what the stream held when asked, then
    /// verified by the node that holds it, each against a fresh fold of its copy. Asked again while a partition is
    /// moving between nodes (for up to three lease times: an administrator's command, not a read that must be quick).
    public func verifyCluster() async throws -> ClusterVerifyReport {
        let deadline = ContinuousClock.now + settings.leaseTime * 3
        var answers: [PartitionAnswer]
        while true {
            do {
                answers = try await gather(PartitionQuery(kind: .verify, settled: true))
                break
            } catch let error as EngineError where error.kind == .unavailable && ContinuousClock.now < deadline {
                try await Task.sleep(for: .seconds(1))
            }
        }
        return ClusterVerifyReport(
            partitions: answers.map { answer in
                ClusterVerifyDocument.PartitionReport(
                    partition: answer.partition, checkpoint: answer.verify?.checkpoint ?? 0,
                    differences: answer.verify?.differences ?? ["no report"], node: answer.node)
            })
    }

    /// ``gather(_:)``, with the key where a node's answer was cut to fit one message (see ``NodeAnswer``).
    private func gatherWithCut(_ query: PartitionQuery) async throws -> (answers: [PartitionAnswer], cut: String?) {
        var byPartition: [Int: PartitionAnswer] = [:]
        var cut: String?
        for partition in held {
            if let replica = replica(partition) { byPartition[partition] = await answer(query, in: replica) }
        }
        let (others, connection) = try await reachingTheCluster {
            (try await leases.liveNodeNames().filter { $0 != settings.node }, try await session.jetStream().connection)
        }
        let payload = Array(try JSONEncoder().encode(query))
        // A verification folds the partition again from its first event: as long as the admin socket's clients wait.
        let timeout = query.kind == .verify ? Duration.seconds(3_600) : readAfterTimeout + .seconds(25)
        let nodeAnswers = await withTaskGroup(of: NodeAnswer?.self) { group in
            for node in others {
                group.addTask {
                    guard
                        let reply = try? await connection.request(
                            Self.partitionsSubject(node), payload: payload, timeout: timeout)
                    else { return nil }
                    return try? JSONDecoder().decode(NodeAnswer.self, from: Data(reply.payload))
                }
            }
            var answers: [NodeAnswer] = []
            for await answer in group { if let answer { answers.append(answer) } }
            return answers
        }
        for answer in nodeAnswers {
            for partition in answer.partitions where byPartition[partition.partition] == nil {
                byPartition[partition.partition] = partition
            }
            if let last = answer.cut, cut.map({ Self.bytesPrecede(last, $0) }) ?? true { cut = last }
        }
        let missing = (0..<settings.partitions).filter { byPartition[$0] == nil }
        guard missing.isEmpty else {
            throw EngineError(
                .unavailable, "partitions \(missing) did not answer (moving between nodes?); ask again in a moment")
        }
        let answers = byPartition.sorted { $0.key < $1.key }.map(\.value)
        if query.kind != .retry, let failure = answers.lazy.compactMap(\.failure).first { throw failure.error }
        return (answers, cut)
    }

    /// This node's answer to `query` for `replica`'s partition.
    func answer(_ query: PartitionQuery, in replica: PartitionReplica) async -> PartitionAnswer {
        var answer = PartitionAnswer(partition: replica.partition)
        do {
            if query.settled { try await settle(replica) }
            switch query.kind {
            case .rules:
                let log = replica.log
                let (versions, inForce) = try await blocking.run {
                    (try TallyEngine.rulesVersions(in: log), try TallyEngine.versionInForce(in: log))
                }
                answer.rules = versions.map { version in
                    var version = version
                    if version.version != query.version { version.text = "" }
                    return version
                }
                answer.versionInForce = inForce
                answer.rebuild = replica.projector.rebuildProgress
            case .clock:
                let (now, aging, nextDue) = try TallyEngine.clockState(of: replica.projector.projections)
                answer.clock = .init(now: now, aging: aging, nextDue: nextDue)
            case .outbox:
                answer.outbox = try await TallyEngine.outboxEntries(
                    state: query.state, limit: query.limit ?? 1000, in: replica.projector.projections,
                    blocking: blocking)
            case .list:
                let query = query.list ?? ContactListQuery()
                let page = try await TallyEngine.listContacts(
                    query, in: replica.projector.projections, blocking: blocking)
                answer.list = .init(items: page.contacts.map(ContactListDocument.Item.init), next: page.next)
            case .preview:
                let version = query.version ?? 0
                let published = Int64(try await blocking.run { try TallyEngine.rulesVersions(in: replica.log) }.count)
                try TallyEngine.checkRulesVersion(version, published: published)
                answer.preview = RebuildPreview(
                    try await blocking.run { try replica.preview(version: version) }, version: version)
            case .aliases:
                let names = query.names ?? []
                guard partitions(of: names).contains(replica.partition) else { break }
                answer.aliases = try replica.projector.projections.read { txn in
                    try names.flatMap { name in try txn.aliases(of: name) }
                }
            case .erase:
                let names = query.names ?? []
                guard partitions(of: names).contains(replica.partition) else { break }
                answer.erased = try await replica.erase(
                    names: names, hash: query.hash ?? "", at: query.at ?? wallClockMillis())
            case .changes:
                let limit = query.limit ?? 1_000
                let page = try await TallyEngine.changes(
                    after: query.after.flatMap { ChangePosition($0) } ?? ChangePosition(seq: 0), limit: limit,
                    in: replica.projector.projections, blocking: blocking)
                let kept = page.changes.filter { $0.position.seq <= query.through ?? .max }
                answer.changes = kept.map(ChangeDocument.init)
                answer.changesCut = page.changes.count == limit && kept.count == limit
                answer.changesRebuild = page.rebuild
            case .scoreBounds:
                let bounds = try await TallyEngine.scoreBounds(
                    query.list ?? ContactListQuery(), in: replica.projector.projections, blocking: blocking)
                answer.bounds = bounds.map { [$0.lowerBound, $0.upperBound] }
            case .verify:
                answer.verify = try await blocking.run { try replica.verify() }
                answer.node = settings.node
            case .histogram:
                guard let span = query.span, span.count == 2, span[0] <= span[1] else {
                    throw EngineError(.invalid, "a histogram needs a span")
                }
                let histogram = try await TallyEngine.scoreHistogram(
                    query.list ?? ContactListQuery(), span: span[0]...span[1], in: replica.projector.projections,
                    blocking: blocking)
                answer.histogram = .init(
                    buckets: histogram.buckets.map {
                        .init(low: $0.low, high: $0.high, count: $0.count, complete: $0.complete)
                    }, examined: histogram.examined)
            case .logged:
                let id = query.names?.first ?? ""
                answer.logged = try replica.log.seq(forID: id) != nil
            case .retry:
                guard let outbox = replica.outbox else {
                    throw EngineError(.unavailable, "node \(settings.node) does not deliver its partitions' outboxes")
                }
                answer.retried = OutboxItem(try await outbox.retry(key: query.key ?? ""))
            }
        } catch {
            answer.failure = PartitionAnswer.Failure(error)
        }
        return answer
    }

    /// This node's answers to `query` for every partition it holds, in at most `room` bytes of JSON: outbox entries
    /// beyond what fits are left out, and the answer says where its list stops.
    func answer(_ query: PartitionQuery, within room: Int) async -> [UInt8] {
        var answer = NodeAnswer(partitions: [])
        if query.kind == .erase { dropIdleCopies(of: query.names ?? []) }
        for partition in held {
            if let replica = replica(partition) { answer.partitions.append(await self.answer(query, in: replica)) }
        }
        let encoder = JSONEncoder()
        while true {
            let json = [UInt8]((try? encoder.encode(answer)) ?? Data())
            if json.count > room,
                let longest = answer.partitions.indices.max(by: {
                    (answer.partitions[$0].list?.items.count ?? 0) < (answer.partitions[$1].list?.items.count ?? 0)
                }), let page = answer.partitions[longest].list, page.items.count > 1, let query = query.list
            {
                // A list page cut: it goes on after the last item it keeps.
                let kept = Array(page.items.prefix(page.items.count / 2))
                let last = kept[kept.count - 1]
                answer.partitions[longest].list = .init(
                    items: kept,
                    next: TallyEngine.listCursor(query, score: Self.listScore(last, query), contact: last.contact))
                continue
            }
            if json.count > room,
                let longest = answer.partitions.indices.max(by: {
                    (answer.partitions[$0].changes?.count ?? 0) < (answer.partitions[$1].changes?.count ?? 0)
                }), let changes = answer.partitions[longest].changes, changes.count > 1
            {
                // A partition's changes cut: the page ends at the last one it keeps.
                answer.partitions[longest].changes = Array(changes.prefix(changes.count / 2))
                answer.partitions[longest].changesCut = true
                continue
            }
            // Outbox entries, or a dry run's contacts, in key order: kept up to the middle key.
            var keys: [String] = []
            for partition in answer.partitions {
                keys += partition.outbox?.map(\.key) ?? []
                keys += partition.preview?.changes.map(\.contact) ?? []
                keys += partition.preview?.reached.map(\.contact) ?? []
            }
            keys.sort(by: Self.bytesPrecede)
            guard json.count > room, keys.count > 1 else { return json }
            let last = keys[keys.count / 2]
            for index in answer.partitions.indices {
                answer.partitions[index].outbox?.removeAll { Self.bytesPrecede(last, $0.key) }
                answer.partitions[index].preview?.changes.removeAll { Self.bytesPrecede(last, $0.contact) }
                answer.partitions[index].preview?.reached.removeAll { Self.bytesPrecede(last, $0.contact) }
            }
            answer.cut = last
        }
    }
}
