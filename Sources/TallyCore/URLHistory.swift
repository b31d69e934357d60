/// What a contact did with one URL, whatever the rules: the base fact from which the page-visit state of any
/// `url.hit` pattern is derived (U2), so that a pattern a rules version introduces sees the whole history.
public struct URLVisit: Sendable, Equatable {
    /// Hits on the URL.
    public var hits: Int64
    /// The log sequence number and `at` of the latest hit on it, in log order.
    public var lastSeq: UInt64
    public var lastAt: Int64
    /// Summed dwell of its hits that a later hit of their session closed, milliseconds (U5).
    public var dwell: Int64

    public init(hits: Int64 = 0, lastSeq: UInt64 = 0, lastAt: Int64 = 0, dwell: Int64 = 0) {
        self.hits = hits
        self.lastSeq = lastSeq
        self.lastAt = lastAt
        self.dwell = dwell
    }
}

/// What one `url.hit` did to its contact's URL facts: a hit on ``url`` at ``at``, and the dwell it closed on the
/// URL of its session's open hit.
public struct URLFact: Sendable, Equatable {
    public var url: String
    public var at: Int64
    public var closed: (url: String, dwell: Int64)?

    public init(url: String, at: Int64, closed: (url: String, dwell: Int64)?) {
        self.url = url
        self.at = at
        self.closed = closed
    }

    public static func == (a: URLFact, b: URLFact) -> Bool {
        a.url == b.url && a.at == b.at && a.closed?.url == b.closed?.url && a.closed?.dwell == b.closed?.dwell
    }

    /// Applies the fact of the event at `seq` to a contact's URL facts, given as a lookup and an update.
    public func apply(
        seq: UInt64, _ visit: (String) throws -> URLVisit?, _ store: (String, URLVisit) throws -> Void
    )
        rethrows
    {
        if let closed, closed.dwell != 0 {
            var row = try visit(closed.url) ?? URLVisit()
            row.dwell &+= closed.dwell
            try store(closed.url, row)
        }
        var row = try visit(url) ?? URLVisit()
        row.hits &+= 1
        row.lastSeq = seq
        row.lastAt = at
        try store(url, row)
    }
}

extension VisitStats {
    /// U2: a pattern's page-visit state as the contact's whole history gives it: its matching URLs' hits and
    /// dwell summed, and the `at` of the latest matching hit in log order. Nil when no URL of the history matches.
    public static func derived(for pattern: URLPattern, from rows: [(url: String, visit: URLVisit)]) -> VisitStats? {
        var stats = VisitStats()
        var latest: UInt64 = 0
        var matched = false
        for (url, visit) in rows where pattern.matches(url) {
            matched = true
            stats.hits &+= visit.hits
            stats.dwell &+= visit.dwell
            if visit.hits > 0, visit.lastSeq >= latest {
                latest = visit.lastSeq
                stats.lastAt = visit.lastAt
            }
        }
        return matched ? stats : nil
    }
}

extension ContactState {
    /// U2: sets the page-visit state of each of `patterns` to what the contact's URL history gives.
    public mutating func backfill(_ patterns: [URLPattern], from rows: [(url: String, visit: URLVisit)]) {
        for pattern in patterns {
            visits[pattern.key] = VisitStats.derived(for: pattern, from: rows)
        }
    }
}

extension Scorer {
    /// The `url.hit` patterns of these rules that `previous` does not track (U2): their state is derived from the
    /// history when this version is published.
    public func newPatterns(comparedTo previous: Scorer) -> [URLPattern] {
        let known = Set(previous.urlPatterns.map(\.key))
        return urlPatterns.filter { !known.contains($0.key) }
    }
}
