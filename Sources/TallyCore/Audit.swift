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

    public init(
        seq: UInt64, eventID: String?, at: Int64, kind: Award.Kind, action: String, version: Int64, group: String?,
        delta: Int64, scoreAfter: Int64, reason: String
    ) {
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
}

/// A contact's audit trail summed up (A2): the main score's entries by action, and the scores they add up to.
public struct Explanation: Sendable, Equatable {
    /// Every entry, main score and groups, in log order.
    public var entries: [AuditEntry]
    /// The sum of the main score's deltas by action, in order of first appearance.
    public var byAction: [(action: String, points: Int64)]
    /// The sum of the main score's deltas: the main score.
    public var points: Int64
    /// The sum of each group's deltas: the group scores.
    public var groups: [String: Int64]

    /// Sums `entries`, or only those whose event happened at or before `asOf` (A6). Deltas add with wrapping
    /// arithmetic: every score is in the 64-bit range, so the wrapped sum is exactly the score.
    public init(entries: [AuditEntry], asOf: Int64? = nil) {
        let entries = asOf.map { limit in entries.filter { $0.at <= limit } } ?? entries
        self.entries = entries
        var points: Int64 = 0
        var groups: [String: Int64] = [:]
        var byAction: [(action: String, points: Int64)] = []
        var index: [String: Int] = [:]
        for entry in entries {
            guard let group = entry.group else {
                points &+= entry.delta
                if let position = index[entry.action] {
                    byAction[position].points &+= entry.delta
                } else {
                    index[entry.action] = byAction.count
                    byAction.append((entry.action, entry.delta))
                }
                continue
            }
            groups[group, default: 0] &+= entry.delta
        }
        self.points = points
        self.groups = groups
        self.byAction = byAction
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.entries == rhs.entries && lhs.points == rhs.points && lhs.groups == rhs.groups
            && lhs.byAction.elementsEqual(rhs.byAction) { $0.action == $1.action && $0.points == $1.points }
    }
}
