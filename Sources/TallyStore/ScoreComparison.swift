import TallyCore

/// What a rebuild would change (A4 `--dry-run`): the live projections against a fresh fold at the same
/// checkpoint.
public struct ScoreComparison: Sendable, Equatable {
    /// One contact whose main or group scores differ.
    public struct Change: Sendable, Equatable {
        public var contact: String
        public var oldPoints: Int64
        public var newPoints: Int64
        public var oldGroups: [String: Int64]
        public var newGroups: [String: Int64]
    }

    /// One contact that would reach trigger events it has not reached live.
    public struct NewlyReached: Sendable, Equatable {
        public var contact: String
        /// `trigger/event` ids.
        public var fired: [String]
    }

    /// The checkpoint both sides were compared at.
    public var checkpoint: UInt64
    public var contacts = 0
    /// How many contacts' scores change, and the first ``limit`` of them in id order.
    public var changedCount = 0
    public var changes: [Change] = []
    public var oldTotal: Int64 = 0
    public var newTotal: Int64 = 0
    /// How many contacts newly reach trigger events, and the first ``limit`` of them.
    public var newlyReachedCount = 0
    public var newlyReached: [NewlyReached] = []
    public var limit: Int
}

extension ProjectionStore {
    /// Compares the scores and fired trigger events of every contact with `fresh`, when both are at
    /// `checkpoint` (nil when this store has moved on; fold the fresh one further and call again).
    public func compareScores(
        with fresh: ProjectionStore, checkpoint: UInt64, limit: Int = 10_000
    ) throws
        -> ScoreComparison?
    {
        try read { live in
            guard try live.checkpoint() == checkpoint else { return nil }
            return try fresh.read { rebuilt in
                var comparison = ScoreComparison(checkpoint: checkpoint, limit: limit)
                var after: String?
                while true {
                    let batch = try rebuilt.contacts(after: after, limit: 10_000)
                    for (contact, new) in batch {
                        let old = try live.contact(contact) ?? ContactState()
                        comparison.contacts += 1
                        comparison.oldTotal &+= old.points
                        comparison.newTotal &+= new.points
                        if old.points != new.points || old.groups != new.groups {
                            comparison.changedCount += 1
                            if comparison.changes.count < limit {
                                comparison.changes.append(
                                    .init(
                                        contact: contact, oldPoints: old.points, newPoints: new.points,
                                        oldGroups: old.groups, newGroups: new.groups))
                            }
                        }
                        let reached = new.fired.subtracting(old.fired).sorted()
                        if !reached.isEmpty {
                            comparison.newlyReachedCount += 1
                            if comparison.newlyReached.count < limit {
                                comparison.newlyReached.append(.init(contact: contact, fired: reached))
                            }
                        }
                    }
                    guard batch.count == 10_000, let last = batch.last else { break }
                    after = last.0
                }
                return comparison
            }
        }
    }
}
