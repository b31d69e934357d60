/// Ingested events as the log's records, written by ``EventDecoder/packBody(_:contentType:maxLineBytes:)``
/// straight from the request's bytes: the ingest path makes no `String` or ``Event`` per event (issue 16).
///
/// A record has the layout of `EventCodec` (TallyStore, `Docs/format.md`) for a behaviour event:
///
/// ```
/// u8 format (1) · u8 type code · i64 LE at · u8 presence bits (id 1, item 2, url 4, session 8)
/// · varint length + contact · [varint length + id] · [… item] · [… url] · [… session]
/// ```
///
/// `EventCodec` writes the same bytes for the same event; a test compares the two on every kind of input.
public struct PackedEvents: Sendable {
    /// One event: where its record and its idempotency key are in ``bytes``, and its type.
    public struct Entry: Sendable {
        public let record: Range<Int>
        /// The `id`'s UTF-8 bytes, inside the record; nil when the event has none.
        public let id: Range<Int>?
        public let type: EventType
    }

    /// The records, back to back.
    public private(set) var bytes: [UInt8] = []
    public private(set) var entries: [Entry] = []

    public init() {}

    /// Reserves room for `events` records of `bytes` bytes in total.
    mutating func reserveCapacity(bytes count: Int, events: Int) {
        bytes.reserveCapacity(count)
        entries.reserveCapacity(events)
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// Appends the record of an event the parser read.
    mutating func append(_ event: ParsedEvent, from parser: Parser) {
        let start = bytes.count
        bytes.append(1)  // the record format
        bytes.append(event.type.rawValue)
        withUnsafeBytes(of: event.at.littleEndian) { bytes.append(contentsOf: $0) }
        var presence: UInt8 = 0
        if event.id != nil { presence |= 1 }
        if event.item != nil { presence |= 2 }
        if event.url != nil { presence |= 4 }
        if event.session != nil { presence |= 8 }
        bytes.append(presence)
        write(event.contact, parser)
        var id: Range<Int>?
        if let text = event.id {
            write(text, parser)
            id = (bytes.count - text.count)..<bytes.count
        }
        if let text = event.item { write(text, parser) }
        if let text = event.url { write(text, parser) }
        if let text = event.session { write(text, parser) }
        entries.append(Entry(record: start..<bytes.count, id: id, type: event.type))
    }

    /// Writes a string as its LEB128 length and its bytes.
    private mutating func write(_ text: RawText, _ parser: Parser) {
        var length = UInt64(text.count)
        while length >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: length) | 0x80)
            length >>= 7
        }
        bytes.append(UInt8(length))
        parser.withBytes(text) { bytes.append(contentsOf: $0) }
    }
}
