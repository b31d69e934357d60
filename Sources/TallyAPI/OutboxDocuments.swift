/// One side effect in the outbox (T6, T7), as `GET /v1/outbox` lists it and a retry answers.
public struct OutboxItem: Codable, Sendable, Equatable {
    /// `<contact>/<trigger>/<event id>`, also the delivery's idempotency key.
    public var key: String
    /// `integration.push`, `email.send` or `email.send_to_user`.
    public var kind: String
    public var contact: String
    public var trigger: String
    public var event: String
    /// `pending`, `delivered` or `failed`.
    public var state: String
    public var attempts: Int
    /// RFC 3339, for a pending entry: when the next attempt is due.
    public var dueAt: String?
    public var lastError: String?
    /// The log sequence number of the event that fired it.
    public var firedSeq: UInt64
    /// RFC 3339.
    public var deliveredAt: String?

    public init(
        key: String, kind: String, contact: String, trigger: String, event: String, state: String, attempts: Int,
        dueAt: String?, lastError: String?, firedSeq: UInt64, deliveredAt: String?
    ) {
        self.key = key
        self.kind = kind
        self.contact = contact
        self.trigger = trigger
        self.event = event
        self.state = state
        self.attempts = attempts
        self.dueAt = dueAt
        self.lastError = lastError
        self.firedSeq = firedSeq
        self.deliveredAt = deliveredAt
    }

    enum CodingKeys: String, CodingKey {
        case key, kind, contact, trigger, event, state, attempts
        case dueAt = "due_at"
        case lastError = "last_error"
        case firedSeq = "fired_seq"
        case deliveredAt = "delivered_at"
    }
}

/// `GET /v1/outbox`.
public struct OutboxList: Codable, Sendable, Equatable {
    public var entries: [OutboxItem]

    public init(entries: [OutboxItem]) {
        self.entries = entries
    }
}

/// The body of an `integration.push` webhook (T6): the side effect's key, the contact's document when it was
/// delivered, the trigger event that fired it and the log position that fired it. Sent with the key as the
/// `Idempotency-Key` header too.
public struct WebhookPayload: Codable, Sendable, Equatable {
    /// The trigger event that fired.
    public struct Trigger: Codable, Sendable, Equatable {
        public var id: String
        public var event: String

        public init(id: String, event: String) {
            self.id = id
            self.event = event
        }
    }

    public var key: String
    public var contact: ContactDocument
    public var trigger: Trigger
    public var firedSeq: UInt64

    public init(key: String, contact: ContactDocument, trigger: Trigger, firedSeq: UInt64) {
        self.key = key
        self.contact = contact
        self.trigger = trigger
        self.firedSeq = firedSeq
    }

    enum CodingKeys: String, CodingKey {
        case key, contact, trigger
        case firedSeq = "fired_seq"
    }
}
