/// The answer to a Segment-compatible request (`POST /v1/batch`, `/v1/track`, …, I6): `200` after the durable
/// commit. ``accepted`` plus ``duplicates`` is the number of calls.
public struct SegmentReceipt: Codable, Sendable, Equatable {
    /// Always true: what Segment's clients look for.
    public var success: Bool
    /// Calls taken: appended now, or acknowledged without an event (``ignored``).
    public var accepted: Int
    /// Calls whose `messageId` was already in the log, acknowledged and not appended again (S6).
    public var duplicates: Int
    /// Of ``accepted``, the calls that append nothing: unmapped `track` events, `identify` with one id, `screen`
    /// and `group`.
    public var ignored: Int
    /// The sequence numbers of the request's first and last event; nil when it appended nothing. Pass `lastSeq`
    /// as `?after=` to read your own write.
    public var firstSeq: UInt64?
    public var lastSeq: UInt64?

    public init(accepted: Int, duplicates: Int, ignored: Int, firstSeq: UInt64?, lastSeq: UInt64?) {
        self.success = true
        self.accepted = accepted
        self.duplicates = duplicates
        self.ignored = ignored
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
    }

    enum CodingKeys: String, CodingKey {
        case success, accepted, duplicates, ignored
        case firstSeq = "first_seq"
        case lastSeq = "last_seq"
    }
}
