/// How an action's awards age (D2, D3): `expires_after` or `decay` in the rules file.
///
/// An expiry is a schedule of one step that keeps nothing; the two differ only in the audit kind and the reason.
public struct Aging: Sendable, Equatable {
    /// Whether the schedule came from `expires_after` (D2) or `decay` (D3).
    public enum Kind: Sendable, Equatable {
        case expiry
        case decay
    }

    /// One step: `after` milliseconds after the award, it keeps `keep` percent of its delta.
    public struct Step: Sendable, Equatable {
        /// Milliseconds after the award's `at`, at least 1.
        public var after: Int64
        /// Percent of the award's delta kept from then on, 0–100.
        public var keep: Int64

        public init(after: Int64, keep: Int64) {
            self.after = after
            self.keep = keep
        }
    }

    public var kind: Kind
    /// In increasing `after` and decreasing `keep`; at least one.
    public var steps: [Step]

    public init(kind: Kind, steps: [Step]) {
        self.kind = kind
        self.steps = steps
    }

    /// `expires_after: D`.
    public static func expiry(after: Int64) -> Aging { Aging(kind: .expiry, steps: [Step(after: after, keep: 0)]) }

    /// `keep` percent of `delta`, rounded toward zero, without overflow (D3).
    public static func kept(_ keep: Int64, of delta: Int64) -> Int64 {
        // delta = 100q + r with r of delta's sign, so delta·keep/100 = q·keep + r·keep/100 and both parts round
        // toward zero together.
        let (q, r) = delta.quotientAndRemainder(dividingBy: 100)
        return q * keep + r * keep / 100
    }
}

/// Where an aging award waits in the due index: ordered by due time, then by the award's place in the log (D4).
public struct AgingKey: Sendable, Hashable, Comparable {
    /// When the next step is due: the award's `at` plus the step's `after`, epoch milliseconds.
    public var due: Int64
    /// The sequence number of the event that made the award.
    public var seq: UInt64
    /// The award's index among that event's awards (its audit index).
    public var index: UInt32

    public init(due: Int64, seq: UInt64, index: UInt32) {
        self.due = due
        self.seq = seq
        self.index = index
    }

    public static func < (a: AgingKey, b: AgingKey) -> Bool {
        (a.due, a.seq, a.index) < (b.due, b.seq, b.index)
    }
}

/// An award that ages (D2, D3), waiting for its next step: what the due index holds. The schedule is the one of
/// the rules version that made the award.
public struct AgingAward: Sendable, Equatable {
    public var contact: String
    /// The point action that made the award.
    public var action: String
    /// The group whose score the award changed; nil for the main score.
    public var group: String?
    /// The award's event time.
    public var awardedAt: Int64
    /// The award's applied delta.
    public var delta: Int64
    /// What of the award is still in the score.
    public var remaining: Int64
    public var aging: Aging
    /// The index in ``Aging/steps`` of the next step.
    public var step: Int

    public init(
        contact: String, action: String, group: String?, awardedAt: Int64, delta: Int64, remaining: Int64,
        aging: Aging, step: Int = 0
    ) {
        self.contact = contact
        self.action = action
        self.group = group
        self.awardedAt = awardedAt
        self.delta = delta
        self.remaining = remaining
        self.aging = aging
        self.step = step
    }

    /// `award`, made to `contact` by an event at `at`, waiting for its first step; nil when the award does not age
    /// or changed nothing.
    public init?(_ award: Award, contact: String, at: Int64) {
        guard let aging = award.aging, award.delta != 0, !aging.steps.isEmpty else { return nil }
        self.init(
            contact: contact, action: award.action, group: award.group, awardedAt: at, delta: award.delta,
            remaining: award.delta, aging: aging)
    }

    /// When the next step is due; nil after the last step.
    public var due: Int64? {
        guard step < aging.steps.count else { return nil }
        let (due, overflow) = awardedAt.addingReportingOverflow(aging.steps[step].after)
        return overflow ? .max : due
    }

    /// Its key in the due index, for the award made by the event at `seq` as its `index`-th; nil after the last step.
    public func key(seq: UInt64, index: UInt32) -> AgingKey? {
        due.map { AgingKey(due: $0, seq: seq, index: index) }
    }
}

/// The due index in memory: aging awards by ``AgingKey``, taken in key order. The reference the stored `aging`
/// table is checked against (``LogReplay``).
public struct AgingQueue: Sendable {
    private var awards: [AgingKey: AgingAward] = [:]

    public init() {}

    public var count: Int { awards.count }

    public mutating func insert(_ award: AgingAward, at key: AgingKey) { awards[key] = award }

    /// Removes and returns the first award due at or before `now`.
    public mutating func popFirst(dueBy now: Int64) -> (AgingKey, AgingAward)? {
        guard let key = awards.keys.filter({ $0.due <= now }).min(), let award = awards.removeValue(forKey: key)
        else { return nil }
        return (key, award)
    }

    /// When the first award is due.
    public var firstDue: Int64? { awards.keys.min()?.due }

    /// Removes the awards of the contacts `contacts` names (a merge replaces them).
    public mutating func removeAll(of contacts: Set<ByteString>) {
        awards = awards.filter { !contacts.contains(ByteString($0.value.contact)) }
    }

    /// Every waiting award in key order.
    public var sorted: [(AgingKey, AgingAward)] { awards.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
}
