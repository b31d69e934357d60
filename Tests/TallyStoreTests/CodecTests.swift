import TallyCore
import Testing

@testable import TallyStore

/// Every record codec of the store: a round trip, truncated and garbage records refused with a
/// ``CorruptRecordError`` naming the table, and a record of another format version refused.
@Suite("Record codecs")
struct CodecTests {
    /// Every cut of `bytes` short of the whole is refused as a corrupt record of `table`.
    static func expectEveryTruncationRefused(
        _ bytes: [UInt8], table: String, _ decode: (UnsafeRawBufferPointer) throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for cut in 0..<bytes.count {
            expectCorrupt(Array(bytes.prefix(cut)), table: table, decode, sourceLocation: sourceLocation)
        }
        expectCorrupt(bytes + [0], table: table, decode, sourceLocation: sourceLocation)  // trailing bytes
    }

    static func expectCorrupt(
        _ bytes: [UInt8], table: String, containing text: String? = nil,
        _ decode: (UnsafeRawBufferPointer) throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(sourceLocation: sourceLocation) {
            try bytes.withUnsafeBytes { try decode($0) }
        } throws: { error in
            guard let corrupt = error as? CorruptRecordError else { return false }
            return corrupt.table == table && (text.map { corrupt.message.contains($0) } ?? true)
                && "\(corrupt)".hasPrefix("corrupt record in \(table): ")
        }
    }

    static let everyType: [Event] = [
        Event(type: .assetDownload, contact: "c", at: 1, id: "e-1", item: "guide"),
        Event(type: .emailSend, contact: "c", at: 2, item: "news"),
        Event(type: .emailOpen, contact: "c", at: -3, item: "news", session: "s"),
        Event(type: .formSubmit, contact: "c", at: 4, item: "demo"),
        Event(type: .pageHit, contact: "c", at: 5, item: "landing"),
        Event(type: .urlHit, contact: "c", at: Int64.max, id: "h", url: "https://example.com/", session: "s"),
        Event(type: .contactUpdate, contact: "c", at: 7, email: "a@example.com", ownerEmail: "o@example.com"),
        Event(type: .pointsChange, contact: "c", at: 8, group: "g", reason: "why", value: -7, operation: .minus),
        Event(type: .pointsSet, contact: "c", at: 9, email: "a@example.com", reason: "f.csv", value: 42),
        Event(type: .rulesPublished, contact: "", at: 10, reason: "api", text: "actions: []\n"),
        Event(type: .rebuild, contact: "", at: 11, value: 2),
    ]

    @Test("the event codec round-trips every event type, and refuses each truncation of each as corrupt `events`")
    func eventsOfEveryType() throws {
        #expect(Set(Self.everyType.map(\.type.rawValue)).count == 11)
        for event in Self.everyType {
            let bytes = EventCodec.encode(event)
            #expect(try EventCodec.decode(bytes) == event)
            Self.expectEveryTruncationRefused(bytes, table: "events") { _ = try EventCodec.decode($0) }
        }
        for operation in [PointsOperation.plus, .minus, .times, .divide, .set] {
            let event = Event(type: .pointsChange, contact: "c", at: 0, value: 3, operation: operation)
            #expect(try EventCodec.decode(EventCodec.encode(event)) == event)
        }
        // K4: a moved event's origin clock, after its other fields; `Int64.min` (no clock) and a behaviour alone.
        for (base, clock) in [(Self.everyType[0], Int64.min), (Self.everyType[7], 1_780_000_000_000)] {
            var moved = base
            moved.originClock = clock
            let bytes = EventCodec.encode(moved)
            #expect(
                bytes.count == EventCodec.encode(base).count + 8 + (EventCodec.encode(base)[10] & 0x80 == 0 ? 1 : 0))
            #expect(try EventCodec.decode(bytes) == moved)
            Self.expectEveryTruncationRefused(bytes, table: "events") { _ = try EventCodec.decode($0) }
        }
    }

    @Test("the event codec refuses another record format, an unknown type, operation or presence bit")
    func eventGarbage() throws {
        let bytes = EventCodec.encode(Self.everyType[7])
        var format = bytes
        format[0] &+= 1
        Self.expectCorrupt(format, table: "events", containing: "format") { _ = try EventCodec.decode($0) }
        var type = bytes
        type[1] = 99
        Self.expectCorrupt(type, table: "events", containing: "type 99") { _ = try EventCodec.decode($0) }
        var operation = bytes
        operation[operation.count - 1] = 9
        Self.expectCorrupt(operation, table: "events", containing: "operation 9") { _ = try EventCodec.decode($0) }
        var bits = EventCodec.encode(Self.everyType[0])
        bits[10] |= 0x40
        Self.expectCorrupt(bits, table: "events", containing: "presence") { _ = try EventCodec.decode($0) }
        Self.expectCorrupt([0xFF, 0xFF, 0xFF], table: "events") { _ = try EventCodec.decode($0) }
    }

    static let fullState = ContactState(
        points: Int64.min, groups: ["product": 25, "content": -3], awarded: ["demo", "download"],
        visits: [
            ByteString("https://example.com/pricing*"): VisitStats(hits: 3, lastAt: 1_000, dwell: 60_000),
            ByteString("https://example.com/docs*"): VisitStats(hits: 1, lastAt: nil, dwell: 0),
        ],
        fired: ["hot/tag-hot"], tags: ["hot", "b"], segments: ["mql-list"], campaigns: ["nurture"],
        email: "a@example.com", ownerEmail: "o@example.com",
        caps: ["open": CapState(count: 7, recent: [-5, 1_000, 2_000], forgotten: -9), "visit": CapState(count: 2)],
        rearms: ["mql": RearmState(firings: 3, armed: true), "cold": RearmState(firings: 1, armed: false)])

    @Test("the contact state codec round-trips every field, and refuses each truncation as corrupt `contacts`")
    func contactState() throws {
        for state in [Self.fullState, ContactState()] {
            let bytes = ContactCodec.encode(state)
            #expect(try bytes.withUnsafeBytes { try ContactCodec.decode($0) } == state)
            Self.expectEveryTruncationRefused(bytes, table: "contacts") { _ = try ContactCodec.decode($0) }
        }
        var format = ContactCodec.encode(Self.fullState)
        format[0] &+= 1
        Self.expectCorrupt(format, table: "contacts", containing: "format") { _ = try ContactCodec.decode($0) }
    }

    @Test("C2 T9 a contact record with an out-of-range armed flag or too many cap times is corrupt, not misread")
    func contactStateLimits() throws {
        var armed = ContactCodec.encode(ContactState(rearms: ["t": RearmState(firings: 2, armed: true)]))
        // The armed flag, before the empty field and fit-award lists (F1, F2) and the known flag (I1).
        armed[armed.count - 4] = 2
        Self.expectCorrupt(armed, table: "contacts", containing: "armed") { _ = try ContactCodec.decode($0) }
        let many = ContactCodec.encode(
            ContactState(caps: ["a": CapState(count: 2000, recent: Array(0..<1025))]))
        Self.expectCorrupt(many, table: "contacts", containing: "1024") { _ = try ContactCodec.decode($0) }
    }

    @Test("U5 the session codec round-trips an open hit, and refuses truncations and another format as `sessions`")
    func sessions() throws {
        let hit = OpenHit(at: -42, url: "https://example.com/é?q=1")
        let bytes = OpenHitCodec.encode(hit)
        #expect(try bytes.withUnsafeBytes { try OpenHitCodec.decode($0) } == hit)
        Self.expectEveryTruncationRefused(bytes, table: "sessions") { _ = try OpenHitCodec.decode($0) }
        var format = bytes
        format[0] &+= 1
        Self.expectCorrupt(format, table: "sessions", containing: "format") { _ = try OpenHitCodec.decode($0) }
    }

    static let entries: [AuditEntry] = [
        AuditEntry(
            seq: 7, eventID: "e-1", at: 1_000, kind: .action, action: "download", version: 2, group: "product",
            delta: 10, scoreAfter: 35, reason: "asset.download of \"guide\""),
        AuditEntry(
            seq: 7, eventID: nil, at: -5, kind: .manual, action: "(manual)", version: 1, group: nil, delta: Int64.min,
            scoreAfter: Int64.max, reason: ""),
        AuditEntry(
            seq: 7, eventID: nil, at: 0, kind: .imported, action: "(import)", version: 1, group: "g", delta: 0,
            scoreAfter: 0, reason: "scores.csv"),
    ]

    @Test("A1 the audit codec round-trips every kind, and refuses truncations, another format, kind or bits")
    func audit() throws {
        for entry in Self.entries {
            let bytes = AuditCodec.encode(entry)
            #expect(try bytes.withUnsafeBytes { try AuditCodec.decode($0, seq: 7) } == entry)
            Self.expectEveryTruncationRefused(bytes, table: "audit") { _ = try AuditCodec.decode($0, seq: 7) }
        }
        let bytes = AuditCodec.encode(Self.entries[0])
        var format = bytes
        format[0] &+= 1
        Self.expectCorrupt(format, table: "audit", containing: "format") { _ = try AuditCodec.decode($0, seq: 7) }
        var kind = bytes
        kind[1] = 9
        Self.expectCorrupt(kind, table: "audit", containing: "kind 9") { _ = try AuditCodec.decode($0, seq: 7) }
        var bits = bytes
        bits[34] |= 8
        Self.expectCorrupt(bits, table: "audit", containing: "presence") { _ = try AuditCodec.decode($0, seq: 7) }
    }
}
