/// `GET /v1/contacts/{id}/explain` (A1, A2): a contact's audit trail and its sums.
public struct ExplainDocument: Codable, Sendable, Equatable {
    /// One action's share of the main score.
    public struct ActionSum: Codable, Sendable, Equatable {
        public var action: String
        public var points: Int64

        public init(action: String, points: Int64) {
            self.action = action
            self.points = points
        }
    }

    /// One score change (A1).
    public struct Entry: Codable, Sendable, Equatable {
        /// The log sequence number of the causing event.
        public var seq: UInt64
        /// The causing event's `id`.
        public var id: String?
        /// The causing event's time, RFC 3339; for an expiry or a decay, when the award aged (its due time).
        public var at: String
        /// The action or trigger id; `(manual)` or `(import)` for M1 and M2.
        public var action: String
        /// `action`, `manual`, `import`, `field` (a `contact.field` fit score awarded or reversed, F2), `expiry` or
        /// `decay` (an award aged at a clock event, D2, D3: ``seq`` is the clock event's, ``action`` the award's).
        public var kind: String
        public var rulesVersion: Int64
        /// The group whose score changed; nil for the main score.
        public var group: String?
        public var delta: Int64
        public var scoreAfter: Int64
        /// Why, in words, with the measured values.
        public var reason: String
        /// The contact the entry was made for, when another was merged into this one (I4).
        public var origin: String?

        public init(
            seq: UInt64, id: String?, at: String, action: String, kind: String, rulesVersion: Int64, group: String?,
            delta: Int64, scoreAfter: Int64, reason: String, origin: String? = nil
        ) {
            self.origin = origin
            self.seq = seq
            self.id = id
            self.at = at
            self.action = action
            self.kind = kind
            self.rulesVersion = rulesVersion
            self.group = group
            self.delta = delta
            self.scoreAfter = scoreAfter
            self.reason = reason
        }

        enum CodingKeys: String, CodingKey {
            case seq, id, at, action, kind, group, delta, reason, origin
            case rulesVersion = "rules_version"
            case scoreAfter = "score_after"
        }
    }

    public var contact: String
    public var points: Int64
    public var groups: [String: Int64]
    /// Sums of the main score's deltas by action.
    public var byAction: [String: Int64]
    /// The same in order of first appearance, for tables.
    public var actions: [ActionSum]
    /// The newest `limit` entries, in log order.
    public var entries: [Entry]
    /// Every entry counted in the sums; more than `entries` holds when the limit cut the oldest off.
    public var entriesTotal: Int
    public var at: String?

    public init(
        contact: String, points: Int64, groups: [String: Int64], byAction: [String: Int64], actions: [ActionSum],
        entries: [Entry], entriesTotal: Int, at: String?
    ) {
        self.contact = contact
        self.points = points
        self.groups = groups
        self.byAction = byAction
        self.actions = actions
        self.entries = entries
        self.entriesTotal = entriesTotal
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case contact, points, groups, actions, entries, at
        case byAction = "by_action"
        case entriesTotal = "entries_total"
    }
}
