/// The answer to an append (`POST /v1/events`, a points change, a contact update, a merge): `202` after the
/// durable commit.
public struct EventReceipt: Codable, Sendable, Equatable {
    /// Events newly appended.
    public var accepted: Int
    /// Events whose `id` was already in the log, acknowledged and not appended again (S6).
    public var duplicates: Int
    /// The lowest and highest sequence numbers of the request's events; pass `lastSeq` as `?after=` to read
    /// your own write. Nil when the request appended nothing.
    public var firstSeq: UInt64?
    public var lastSeq: UInt64?

    public init(accepted: Int, duplicates: Int, firstSeq: UInt64?, lastSeq: UInt64?) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
    }

    enum CodingKeys: String, CodingKey {
        case accepted, duplicates
        case firstSeq = "first_seq"
        case lastSeq = "last_seq"
    }

    /// The receipt as `JSONEncoder` writes it (sorted keys, absent sequence numbers left out), written directly: the
    /// answer to every single-event post, where an encoder per response is a measurable part of the request.
    public var json: String {
        var text = "{\"accepted\":\(accepted),\"duplicates\":\(duplicates)"
        if let firstSeq { text += ",\"first_seq\":\(firstSeq)" }
        if let lastSeq { text += ",\"last_seq\":\(lastSeq)" }
        return text + "}"
    }
}

/// The answer to `POST /v1/import/points` (M2).
public struct ImportReceipt: Codable, Sendable, Equatable {
    /// Rows imported, one `points.set` event each.
    public var imported: Int
    public var firstSeq: UInt64?
    public var lastSeq: UInt64?

    public init(imported: Int, firstSeq: UInt64?, lastSeq: UInt64?) {
        self.imported = imported
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
    }

    enum CodingKeys: String, CodingKey {
        case imported
        case firstSeq = "first_seq"
        case lastSeq = "last_seq"
    }
}

/// `GET /health`: `200` while the log accepts writes, `503` with ``error`` when it does not.
public struct HealthStatus: Codable, Sendable, Equatable {
    /// `ok` or `unavailable`.
    public var status: String
    public var logHead: UInt64
    /// The last sequence number the projections include.
    public var projected: UInt64
    public var error: String?

    public init(status: String, logHead: UInt64, projected: UInt64, error: String?) {
        self.status = status
        self.logHead = logHead
        self.projected = projected
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case status, projected, error
        case logHead = "log_head"
    }
}

/// Every error answer: `{"error": {"status", "message", "line"?, "field"?}}`.
public struct ErrorDocument: Codable, Sendable, Equatable {
    /// What went wrong, and where in the request.
    public struct Detail: Codable, Sendable, Equatable {
        /// The HTTP status code, repeated.
        public var status: Int
        public var message: String
        /// For a rejected body: its 1-based line.
        public var line: Int?
        /// The field at fault.
        public var field: String?

        public init(status: Int, message: String, line: Int? = nil, field: String? = nil) {
            self.status = status
            self.message = message
            self.line = line
            self.field = field
        }
    }

    public var error: Detail

    public init(error: Detail) {
        self.error = error
    }
}
