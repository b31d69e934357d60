import TallyStore

/// The distribution of a score (main, or a group's) over the contacts matching a list's filters (L3), in at most
/// ``maximumBuckets`` buckets of equal width, counted from the `scores` index with a bounded scan.
public struct ScoreHistogram: Sendable, Equatable {
    /// Contacts with a score in `low...high`; `count` is exact when `complete`, a lower bound otherwise.
    public struct Bucket: Sendable, Equatable {
        public var low: Int64
        public var high: Int64
        public var count: Int
        public var complete: Bool

        public init(low: Int64, high: Int64, count: Int, complete: Bool) {
            (self.low, self.high, self.count, self.complete) = (low, high, count, complete)
        }
    }

    /// The group whose score is counted; nil for the main score.
    public var group: String?
    /// Ascending, adjacent, each `width` wide (the last may be cut at the highest score); empty when no contact
    /// has a score within the query's bounds.
    public var buckets: [Bucket]
    /// Index entries examined.
    public var examined: Int

    public init(group: String?, buckets: [Bucket], examined: Int) {
        (self.group, self.buckets, self.examined) = (group, buckets, examined)
    }

    /// Whether every bucket's count is exact.
    public var complete: Bool { buckets.allSatisfy(\.complete) }
    /// The contacts counted: exact when `complete`, a lower bound otherwise.
    public var total: Int { buckets.reduce(0) { $0 + $1.count } }

    /// The most buckets a histogram has.
    public static let maximumBuckets = 20
    /// The most `scores` index entries one histogram without membership filters examines (plus one seek per
    /// bucket and round): beyond it, the buckets not finished are lower bounds. An entry costs a key comparison
    /// (~30 M/s in a release build here), so this is some 70 ms.
    public static let scanBudget = 2_000_000
    /// The same with membership filters, whose entries cost a point read each (~2 M/s): some 100 ms.
    public static let filteredScanBudget = 200_000
    /// The most rounds of sharing the budget among the buckets not yet finished.
    static let maximumRounds = 8

    /// Equal buckets over `bounds`: at most `count`, of a "nice" width (1, 2 or 5 × 10ⁿ) aligned to a multiple of
    /// it, so that the axis reads as people count.
    static func edges(_ bounds: ClosedRange<Int64>, count: Int) -> [ClosedRange<Int64>] {
        let (low, high) = (bounds.lowerBound, bounds.upperBound)
        let span = UInt64(bitPattern: high &- low)  // high ≥ low: exact as unsigned
        let count = UInt64(max(1, count))
        var width = span / count + 1
        if span < 1_000_000_000_000_000 {
            var nice: UInt64 = 1
            outer: while true {
                for factor: UInt64 in [1, 2, 5] where nice * factor >= width {
                    nice *= factor
                    break outer
                }
                nice *= 10
            }
            width = nice
        }
        // The first edge: low rounded down to a multiple of the width (when that does not leave Int64).
        var start = low
        if width > 1, span < 1_000_000_000_000_000, low > -1_000_000_000_000_000_000, low < 1_000_000_000_000_000_000 {
            let w = Int64(width)
            let remainder = ((low % w) + w) % w
            start = low - remainder
        }
        var result: [ClosedRange<Int64>] = []
        var edge = start
        while result.count < Int(count) + 1 {
            let offset = UInt64(bitPattern: high &- edge)  // edge ≤ high here
            let last = offset < width ? high : edge &+ Int64(bitPattern: width - 1)
            result.append(max(edge, low)...last)
            if last == high { break }
            edge = last &+ 1
        }
        return result
    }
}

extension TallyEngine {
    /// L3: the distribution of the score `query` filters on (its group's, or the main score) over the contacts
    /// matching its bounds and memberships, on the blocking pool. Cost: two seeks for the lowest and highest score
    /// (with membership filters, walks from both ends to the first member, a tenth of the budget each at most),
    /// then at most `budget` index entries in all (by default ``ScoreHistogram/scanBudget``, or
    /// ``ScoreHistogram/filteredScanBudget`` with membership filters, whose entries cost one point read per
    /// filter) and one seek per bucket and round. The query's sort, limit and cursor do not apply.
    public func scoreHistogram(
        _ query: ContactListQuery, buckets: Int = ScoreHistogram.maximumBuckets, budget: Int? = nil
    ) async throws -> ScoreHistogram {
        try await Self.scoreHistogram(
            query, span: nil, in: projections, blocking: blocking, buckets: buckets, budget: budget)
    }

    /// ``scoreHistogram(_:buckets:budget:)`` of `projections` (a node's, or a cluster partition's); with `span`, its
    /// buckets are those of that span, whatever the scores here (a cluster's partitions count into the same ones).
    public static func scoreHistogram(
        _ query: ContactListQuery, span: ClosedRange<Int64>?, in projections: LiveProjections,
        blocking: BlockingWork, buckets: Int = ScoreHistogram.maximumBuckets, budget: Int? = nil
    ) async throws -> ScoreHistogram {
        let budget =
            budget ?? (query.memberships.isEmpty ? ScoreHistogram.scanBudget : ScoreHistogram.filteredScanBudget)
        return try await blocking.run {
            try projections.read { txn in
                try Self.histogram(query, buckets: buckets, budget: budget, span: span, in: txn)
            }
        }
    }

    /// The lowest and highest score within the query's bounds in `projections` (nil: none), the span a cluster's
    /// histogram is counted over.
    public static func scoreBounds(
        _ query: ContactListQuery, in projections: LiveProjections, blocking: BlockingWork
    ) async throws -> ClosedRange<Int64>? {
        guard let range = query.range else { return nil }
        return try await blocking.run {
            try projections.read { txn in try txn.scoreBounds(group: query.group, range: range) }
        }
    }

    private static func histogram(
        _ query: ContactListQuery, buckets: Int, budget: Int, span fixed: ClosedRange<Int64>? = nil,
        in txn: ProjectionTransaction
    ) throws -> ScoreHistogram {
        var histogram = ScoreHistogram(group: query.group, buckets: [], examined: 0)
        guard let range = query.range, let found = try txn.scoreBounds(group: query.group, range: range) else {
            guard let fixed else { return histogram }
            let edges = ScoreHistogram.edges(fixed, count: min(max(1, buckets), ScoreHistogram.maximumBuckets))
            histogram.buckets = edges.map { .init(low: $0.lowerBound, high: $0.upperBound, count: 0, complete: true) }
            return histogram
        }
        let bounds = fixed ?? found
        let memberships = query.memberships
        func admit(_ contact: String) throws -> Bool {
            for (kind, name) in memberships where try !txn.isMember(kind, name, contact) { return false }
            return true
        }
        // With membership filters, walk the first one's members: exact when they are at most a budget's worth.
        if let exact = try membersHistogram(
            query, bounds: bounds, buckets: buckets, budget: budget, span: fixed, in: txn)
        {
            return exact
        }
        var remaining = budget
        // With membership filters, the buckets span the lowest to the highest score of a member, when a tenth of the
        // budget from either end finds one; otherwise of every contact within the bounds.
        var span = bounds
        if !memberships.isEmpty, fixed == nil {
            let share = max(1, budget / 10)
            let low = try txn.firstScore(
                group: query.group, range: bounds, descending: false, budget: share, admit: admit)
            remaining -= low.examined
            histogram.examined += low.examined
            guard let lowest = low.score ?? (low.examined < share ? nil : bounds.lowerBound) else {
                return histogram  // every entry examined, and none a member
            }
            let high = try txn.firstScore(
                group: query.group, range: lowest...bounds.upperBound, descending: true, budget: share, admit: admit)
            remaining -= high.examined
            histogram.examined += high.examined
            span = lowest...(high.score ?? bounds.upperBound)
        }
        let edges = ScoreHistogram.edges(span, count: min(max(1, buckets), ScoreHistogram.maximumBuckets))
        histogram.buckets = edges.map { .init(low: $0.lowerBound, high: $0.upperBound, count: 0, complete: false) }
        var resume = [ScoreIndexPosition?](repeating: nil, count: edges.count)
        remaining = max(remaining, edges.count)
        // Rounds: the budget left is shared among the buckets not finished, so that a few crowded buckets do not
        // starve the rest, and a sparse histogram is exact.
        for _ in 0..<ScoreHistogram.maximumRounds {
            let open = histogram.buckets.indices.filter { !histogram.buckets[$0].complete }
            guard !open.isEmpty, remaining > 0 else { break }
            let share = max(1, remaining / open.count)
            for index in open where remaining > 0 {
                let count = try txn.countByScore(
                    group: query.group, range: edges[index], after: resume[index], budget: min(share, remaining),
                    admit: memberships.isEmpty ? nil : admit)
                remaining -= count.examined
                histogram.examined += count.examined
                histogram.buckets[index].count += count.matched
                resume[index] = count.resume
                histogram.buckets[index].complete = count.finished
            }
        }
        return histogram
    }

    /// The histogram from the members of the query's first membership filter, each checked against the others and
    /// its score read from its record: nil (nothing decided) without membership filters, or when the members are
    /// more than `budget`.
    private static func membersHistogram(
        _ query: ContactListQuery, bounds: ClosedRange<Int64>, buckets: Int, budget: Int, span: ClosedRange<Int64>?,
        in txn: ProjectionTransaction
    ) throws -> ScoreHistogram? {
        let memberships = query.memberships
        guard let (kind, name) = memberships.first else { return nil }
        var scores: [Int64] = []
        var examined = 0
        var finished = true
        try txn.forEachMember(kind, name, after: nil) { contact in
            guard examined < budget else {
                finished = false
                return false
            }
            examined += 1
            for (other, otherName) in memberships.dropFirst() where try !txn.isMember(other, otherName, contact) {
                return true
            }
            guard let state = try txn.contact(contact) else { return true }
            let score: Int64?
            if let group = query.group { score = state.groups[group] } else { score = state.points }
            if let score, bounds.contains(score) { scores.append(score) }
            return true
        }
        guard finished else { return nil }
        var histogram = ScoreHistogram(group: query.group, buckets: [], examined: examined)
        guard let span = span ?? scores.min().flatMap({ low in scores.max().map { low...$0 } }) else {
            return histogram
        }
        let edges = ScoreHistogram.edges(span, count: min(max(1, buckets), ScoreHistogram.maximumBuckets))
        histogram.buckets = edges.map { .init(low: $0.lowerBound, high: $0.upperBound, count: 0, complete: true) }
        for score in scores {
            // The first bucket whose upper end is at or above the score (edges ascend and are adjacent).
            var (low, high) = (0, edges.count - 1)
            while low < high {
                let middle = (low + high) / 2
                if edges[middle].upperBound < score { low = middle + 1 } else { high = middle }
            }
            histogram.buckets[low].count += 1
        }
        return histogram
    }
}
