/// One change of one of a contact's scores, with its cause (A1): what `explain` lists and `score --at` sums.
public struct AuditEntry: Sendable, Equatable {
    /// The log sequence number of the causing event.
    public var seq: UInt64
    /// The causing event's idempotency key, when it had one.
    public var eventID: String?
    /// The causing event's time.
    public var at: Int64
    public var kind: Award.Kind
    /// The point action's id, or `(manual)` / `(import)`.
    public var action: String
    /// The rules version in force.
    public var version: Int64
    /// The group whose score changed; nil for the main score.
    public var group: String?
    public var delta: Int64
    public var scoreAfter: Int64
    /// The reason in words, with the measured values.
    public var reason: String
    /// The contact the entry was made for, when it is not the one whose trail holds it: a contact merged into
    /// this one, or an alias an event named (I4).
    public var origin: String?

    public init(
        seq: UInt64, eventID: String?, at: Int64, kind: Award.Kind, action: String, version: Int64, group: String?,
        delta: Int64, scoreAfter: Int64, reason: String, origin: String? = nil
    ) {
        self.origin = origin
        self.seq = seq
        self.eventID = eventID
        self.at = at
        self.kind = kind
        self.action = action
        self.version = version
        self.group = group
        self.delta = delta
        self.scoreAfter = scoreAfter
        self.reason = reason
    }

    /// The entry for an award made while folding `logged` under rules `version`.
    public init(_ award: Award, of logged: LoggedEvent, version: Int64) {
        self.init(
            seq: logged.seq, eventID: logged.event.id, at: logged.event.at, kind: award.kind, action: award.action,
            version: version, group: award.group, delta: award.delta, scoreAfter: award.scoreAfter,
            reason: award.reason)
    }

    /// The entry for an expiry or decay (D2, D3) due at `due` and applied by the clock event at `clock`: its
    /// `at` is when the award aged, so that `score --at` counts it from then (D4).
    public init(aged award: Award, due: Int64, clock: UInt64, version: Int64) {
        self.init(
            seq: clock, eventID: nil, at: due, kind: award.kind, action: award.action, version: version,
            group: award.group, delta: award.delta, scoreAfter: award.scoreAfter, reason: award.reason)
    }
}

/// A contact's audit trail summed up (A2): the main score's entries by action, and the scores they add up to.
public struct Explanation: Sendable, Equatable {
    /// The newest entries counted (at most the limit it was built with), main score and groups, in log order.
    public var entries: [AuditEntry]
    /// How many entries were counted: more than ``entries`` holds when the limit cut the oldest off.
    public var total: Int
    /// The sum of the main score's deltas by action, in order of first appearance.
    public var byAction: [(action: String, points: Int64)]
    /// The sum of the main score's deltas: the main score.
    public var points: Int64
    /// The sum of each group's deltas: the group scores.
    public var groups: [String: Int64]

    /// Entries an explanation lists unless asked for another number; the sums always cover every entry.
    public static let defaultLimit = 10_000
    /// The most entries a request may ask for.
    public static let maximumLimit = 100_000

    /// Sums `entries`, or only those whose event happened at or before `asOf` (A6), keeping the newest `limit`.
    public init(entries: [AuditEntry], asOf: Int64? = nil, limit: Int = .max) {
        var builder = Builder(asOf: asOf, limit: limit)
        for entry in entries { builder.add(entry) }
        self = builder.explanation
    }

    private init() {
        (entries, total, byAction, points, groups) = ([], 0, [], 0, [:])
    }

    /// Builds an explanation one entry at a time, in log order, holding no more than about twice `limit`
    /// entries: a contact with a million entries is summed in constant memory. Deltas add with wrapping
    /// arithmetic: every score is in the 64-bit range, so the wrapped sum is exactly the score.
    public struct Builder {
        let asOf: Int64?
        let limit: Int
        private var result = Explanation()
        private var actionIndex: [String: Int] = [:]

        /// When the held entries reach this, the oldest beyond `limit` are dropped (amortised O(1) per entry).
        private let trimAt: Int

        public init(asOf: Int64? = nil, limit: Int = .max) {
            self.asOf = asOf
            self.limit = max(limit, 0)
            self.trimAt = self.limit > Int.max / 2 ? Int.max : 2 * self.limit
        }

        public mutating func add(_ entry: AuditEntry) {
            if let asOf, entry.at > asOf { return }
            result.total += 1
            if limit > 0 {
                result.entries.append(entry)
                if result.entries.count >= trimAt { result.entries.removeFirst(result.entries.count - limit) }
            }
            guard let group = entry.group else {
                result.points &+= entry.delta
                if let position = actionIndex[entry.action] {
                    result.byAction[position].points &+= entry.delta
                } else {
                    actionIndex[entry.action] = result.byAction.count
                    result.byAction.append((entry.action, entry.delta))
                }
                return
            }
            result.groups[group, default: 0] &+= entry.delta
        }

        public var explanation: Explanation {
            var result = result
            if result.entries.count > limit { result.entries.removeFirst(result.entries.count - limit) }
            return result
        }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.entries == rhs.entries && lhs.total == rhs.total && lhs.points == rhs.points && lhs.groups == rhs.groups
            && lhs.byAction.elementsEqual(rhs.byAction) { $0.action == $1.action && $0.points == $1.points }
    }
}
