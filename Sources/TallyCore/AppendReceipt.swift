/// The outcome of appending one request's events.
public struct AppendReceipt: Sendable, Equatable {
    /// Events newly appended.
    public var accepted: Int
    /// Events whose `id` was already in the log (or earlier in the same request) and were not appended again.
    public var duplicates: Int
    /// ``duplicates`` by event type.
    public var duplicatesByType: [EventType: Int] = [:]
    /// The lowest and highest sequence numbers of the request's events in the log, duplicates counting at the
    /// position of the event they repeat, so that `?after=lastSeq` waits for all of them. Nil for no events.
    public var firstSeq: UInt64?
    public var lastSeq: UInt64?

    public init(
        accepted: Int = 0, duplicates: Int = 0, duplicatesByType: [EventType: Int] = [:], firstSeq: UInt64? = nil,
        lastSeq: UInt64? = nil
    ) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.duplicatesByType = duplicatesByType
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
    }

    /// Widens the sequence range to cover `seq`.
    package mutating func include(_ seq: UInt64) {
        firstSeq = min(firstSeq ?? seq, seq)
        lastSeq = max(lastSeq ?? seq, seq)
    }
}
