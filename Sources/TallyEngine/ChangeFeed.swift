public import TallyAPI
public import TallyCore
import TallyStore

/// A position in the change feed (L2): after every change of event `seq` (`index` nil, written `SEQ`), or after
/// its change `index` (`SEQ.INDEX`).
public struct ChangePosition: Sendable, Equatable, CustomStringConvertible {
    public var seq: UInt64
    public var index: UInt32?

    public init(seq: UInt64, index: UInt32? = nil) {
        self.seq = seq
        self.index = index
    }

    /// Parses `SEQ` or `SEQ.INDEX`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let seq = UInt64(parts[0]) else { return nil }
        if parts.count == 2 {
            guard let index = UInt32(parts[1]) else { return nil }
            self.init(seq: seq, index: index)
        } else {
            self.init(seq: seq)
        }
    }

    public var description: String { index.map { "\(seq).\($0)" } ?? "\(seq)" }
}

/// One score change of the feed: its position, its contact and its audit entry.
public struct Change: Sendable {
    public var position: ChangePosition
    public var contact: String
    public var entry: AuditEntry
}

extension TallyEngine {
    /// The most changes one read returns.
    public static let maximumChanges = 10_000

    /// L2: up to `limit` score changes after `position`, in log order, with the position to go on from and the
    /// `rebuild` event the projections were built for (on the blocking pool; one short read transaction).
    public func changes(
        after position: ChangePosition, limit: Int
    ) async throws -> (
        changes: [Change], next: ChangePosition, rebuild: UInt64?
    ) {
        try await Self.changes(after: position, limit: limit, in: projections, blocking: blocking)
    }

    /// The changes of `projections` (a node's, or a cluster partition's), as ``changes(after:limit:)``.
    public static func changes(
        after position: ChangePosition, limit: Int, in projections: LiveProjections, blocking: BlockingWork
    ) async throws -> (changes: [Change], next: ChangePosition, rebuild: UInt64?) {
        guard (1...Self.maximumChanges).contains(limit) else {
            throw EngineError(.invalid, "\"limit\" must be 1–\(Self.maximumChanges)", field: "limit")
        }
        return try await blocking.run {
            try projections.read { txn in
                var changes: [Change] = []
                try txn.forEachChange(after: position.seq, index: position.index) { seq, index, contact, entry in
                    changes.append(
                        Change(position: ChangePosition(seq: seq, index: index), contact: contact, entry: entry))
                    return changes.count < limit
                }
                let rebuild = try txn.rebuildSeq()
                return (changes, changes.last?.position ?? position, rebuild == 0 ? nil : rebuild)
            }
        }
    }

    /// Waits until the projections have folded beyond `seq`, or `timeout`; false on timeout or cancellation.
    public func awaitFolding(beyond seq: UInt64, timeout: Duration) async -> Bool {
        await projector.projected.wait(forAtLeast: seq &+ 1, timeout: timeout)
    }

    /// The last sequence number the projections have fully folded.
    public var projectedSeq: UInt64 { projector.projected.value }
}

extension ChangeDocument {
    /// The feed's document of a change (L2).
    public init(_ change: Change) {
        let entry = change.entry
        self.init(
            seq: change.position.seq, index: change.position.index ?? 0, contact: change.contact,
            score: entry.group ?? "main", delta: entry.delta, points: entry.scoreAfter, kind: entry.kind.name,
            action: entry.action, at: Timestamp.format(entry.at))
    }

    /// Its position in the feed.
    public var position: ChangePosition { ChangePosition(seq: seq, index: index) }
}
