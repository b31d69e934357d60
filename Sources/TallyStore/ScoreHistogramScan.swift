/// Where a bounded count over the `scores` index stopped (L3): how many contacts it admitted, how many index entries
/// it examined, and the position to resume from when it ran out of budget before the end of its range.
public struct ScoreCount: Sendable, Equatable {
    public var matched: Int
    public var examined: Int
    /// The last entry examined, when the range was not finished: pass it as `after` to go on.
    public var resume: ScoreIndexPosition?

    /// Whether the count covers the whole range.
    public var finished: Bool { resume == nil }
}

/// A position in the `scores` index (an entry's key), opaque to callers.
public struct ScoreIndexPosition: Sendable, Equatable {
    let key: [UInt8]
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

    /// Counts the contacts with a score (main, or `group`'s) in `range` that `admit` accepts (all when nil),
    /// ascending from strictly after `after`, examining at most `budget` index entries (at least one). Without
    /// `admit` an entry costs a key comparison and no allocation.
    public func countByScore(
        group: String?, range: ClosedRange<Int64>, after: ScoreIndexPosition?, budget: Int,
        admit: ((String) throws -> Bool)?
    ) throws -> ScoreCount {
        var count = ScoreCount(matched: 0, examined: 0, resume: nil)
        let budget = max(1, budget)
        let prefix = ContactIndex.scorePrefix(group)
        let start = after?.key ?? ContactIndex.scoreKey(group, range.lowerBound, "")
        var last: [UInt8] = []
        try txn.scan(store.scores, from: start) { key, _ in
            guard key.count >= prefix.count + 8, key.starts(with: prefix) else { return false }
            if let after, key.elementsEqual(after.key) { return true }
            guard ContactIndex.score(from: key[prefix.count...]) <= range.upperBound else { return false }
            guard count.examined < budget else {
                // An entry in range beyond the budget: the count goes on after the last one examined.
                count.resume = ScoreIndexPosition(key: last)
                return false
            }
            count.examined += 1
            if let admit {
                let contact = String(
                    decoding: UnsafeRawBufferPointer(rebasing: key[(prefix.count + 8)...]), as: UTF8.self)
                if try admit(contact) { count.matched += 1 }
            } else {
                count.matched += 1
            }
            if count.examined == budget { last = Array(key) }
            return true
        }
        return count
    }
}
