/// Where a bounded count over the `scores` index stopped (L3): how many contacts it admitted, how many index entries
/// it examined, and the position to resume from when it ran out of budget before the end of its range.
public struct ScoreCount: Sendable, Equatable {
    public var matched: Int
    public var examined: Int
    /// The last entry examined, when the range was not finished: pass it as `after` to go on.
    public var resume: ScorePosition?

    /// Whether the count covers the whole range.
    public var finished: Bool { resume == nil }
}

/// A position in the `scores` index: a score and a contact id.
public struct ScorePosition: Sendable, Equatable {
    public var score: Int64
    public var contact: String

    public init(score: Int64, contact: String) {
        self.score = score
        self.contact = contact
    }
}

extension ProjectionTransaction {
    /// The lowest and highest score (main, or `group`'s) within `range` that some contact has: two seeks in the
    /// `scores` index. Nil when no contact has a score there.
    public func scoreBounds(group: String?, range: ClosedRange<Int64>) throws -> ClosedRange<Int64>? {
        var lowest: Int64?
        var highest: Int64?
        try forEachByScore(group: group, range: range, descending: false, after: nil) { score, _ in
            lowest = score
            return false
        }
        try forEachByScore(group: group, range: range, descending: true, after: nil) { score, _ in
            highest = score
            return false
        }
        guard let lowest, let highest, lowest <= highest else { return nil }
        return lowest...highest
    }

    /// The first score (lowest, or highest when `descending`) within `range` of a contact that `admit` accepts,
    /// examining at most `budget` index entries; nil when none was found within them. Also returns how many it
    /// examined.
    public func firstScore(
        group: String?, range: ClosedRange<Int64>, descending: Bool, budget: Int, admit: (String) throws -> Bool
    ) throws -> (score: Int64?, examined: Int) {
        var found: Int64?
        var examined = 0
        try forEachByScore(group: group, range: range, descending: descending, after: nil) { score, contact in
            examined += 1
            if try admit(contact) {
                found = score
                return false
            }
            return examined < budget
        }
        return (found, examined)
    }

    /// Counts the contacts with a score (main, or `group`'s) in `range` that `admit` accepts, ascending from
    /// strictly after `after`, examining at most `budget` index entries (at least one).
    public func countByScore(
        group: String?, range: ClosedRange<Int64>, after: ScorePosition?, budget: Int,
        admit: (String) throws -> Bool
    ) throws -> ScoreCount {
        var count = ScoreCount(matched: 0, examined: 0, resume: nil)
        let budget = max(1, budget)
        try forEachByScore(
            group: group, range: range, descending: false, after: after.map { ($0.score, $0.contact) }
        ) { score, contact in
            count.examined += 1
            if try admit(contact) { count.matched += 1 }
            guard count.examined < budget else {
                count.resume = ScorePosition(score: score, contact: contact)
                return false
            }
            return true
        }
        // A range whose last entry was exactly the budget's last is finished: check with one more seek.
        if let resume = count.resume {
            var more = false
            try forEachByScore(
                group: group, range: range, descending: false, after: (resume.score, resume.contact)
            ) { _, _ in
                more = true
                return false
            }
            if !more { count.resume = nil }
        }
        return count
    }
}
