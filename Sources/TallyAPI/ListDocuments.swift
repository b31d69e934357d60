/// The answer to `GET /v1/contacts` (L1): one page of a contact list.
public struct ContactListDocument: Codable, Sendable, Equatable {
    /// One contact of the list.
    public struct Item: Codable, Sendable, Equatable {
        public var contact: String
        public var points: Int64
        public var groups: [String: Int64]
        public var tags: [String]
        public var segments: [String]

        public init(contact: String, points: Int64, groups: [String: Int64], tags: [String], segments: [String]) {
            self.contact = contact
            self.points = points
            self.groups = groups
            self.tags = tags
            self.segments = segments
        }
    }

    public var contacts: [Item]
    /// The `cursor` of the next page; nil after the last.
    public var next: String?

    public init(contacts: [Item], next: String?) {
        self.contacts = contacts
        self.next = next
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(contacts, forKey: .contacts)
        try container.encode(next, forKey: .next)  // null, not absent, on the last page
    }
}

/// One score change of the change feed (L2): an audit entry in log order.
public struct ChangeDocument: Codable, Sendable, Equatable {
    /// The log sequence number of the event that made the change (for an expiry or decay, the clock event's).
    public var seq: UInt64
    /// The change's position among that event's changes: with ``seq``, the feed position `SEQ.INDEX`.
    public var index: UInt32
    public var contact: String
    /// `main`, or the group's name.
    public var score: String
    public var delta: Int64
    /// The score after the change.
    public var points: Int64
    /// `action`, `manual`, `import`, `field`, `expiry` or `decay`, as in explain.
    public var kind: String
    public var action: String
    /// When the change happened (the event's time; an expiry's or decay's due time), RFC 3339.
    public var at: String

    public init(
        seq: UInt64, index: UInt32, contact: String, score: String, delta: Int64, points: Int64, kind: String,
        action: String, at: String
    ) {
        self.seq = seq
        self.index = index
        self.contact = contact
        self.score = score
        self.delta = delta
        self.points = points
        self.kind = kind
        self.action = action
        self.at = at
    }
}

/// The answer to `GET /v1/changes` (L2).
public struct ChangeListDocument: Codable, Sendable, Equatable {
    public var changes: [ChangeDocument]
    /// Where to go on from: pass it as `after` (`SEQ.INDEX`; the request's `after` when nothing was new).
    public var next: String
    /// The sequence number of the `rebuild` event the projections were rebuilt for, if any: when it changes
    /// between two requests, the feed's history was refolded (see Docs/api.md).
    public var rebuild: UInt64?

    public init(changes: [ChangeDocument], next: String, rebuild: UInt64?) {
        self.changes = changes
        self.next = next
        self.rebuild = rebuild
    }
}
