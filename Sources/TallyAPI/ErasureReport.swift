/// What an erasure did (I8): `DELETE /v1/contacts/{id}` and `tally erase` answer with it.
public struct ErasureReport: Sendable, Codable, Equatable {
    /// The keyed hash of the contact id that the `contact.erased` event holds (HMAC-SHA-256, hex).
    public var hash: String
    /// How many aliases were erased with the contact.
    public var aliases: Int
    /// Events removed from the log.
    public var removedEvents: Int
    /// The sequence number of the `contact.erased` event.
    public var seq: UInt64
    /// Files under `data_dir` in which the id, an alias or an email address of the contact could still be found
    /// (none, unless the check failed: then the answer is an error naming them).
    public var residue: [String]

    public init(hash: String, aliases: Int, removedEvents: Int, seq: UInt64, residue: [String]) {
        self.hash = hash
        self.aliases = aliases
        self.removedEvents = removedEvents
        self.seq = seq
        self.residue = residue
    }

    enum CodingKeys: String, CodingKey {
        case hash, aliases, seq, residue
        case removedEvents = "removed_events"
    }
}
