import TallyCore
import Testing

@testable import TallyStore

/// F1 F2: the event, contact and audit codecs with fields, fit-score awards and the `field` audit kind.
@Suite("Record codecs: fields F1 and fit scores F2")
struct FieldCodecTests {
    static let update = Event(
        type: .contactUpdate, contact: "c", at: 7, email: "a@example.com",
        fields: [
            FieldUpdate(name: "gone", value: nil),
            FieldUpdate(name: "size", value: .number(-1.5e300)),
            FieldUpdate(name: "title", value: .string("Chief ☃ Officer")),
        ])

    @Test("F1 a contact.update with fields round-trips, and each truncation is refused as corrupt `events`")
    func eventRoundTrip() throws {
        let bytes = EventCodec.encode(Self.update)
        #expect(try EventCodec.decode(bytes) == Self.update)
        CodecTests.expectEveryTruncationRefused(bytes, table: "events") { _ = try EventCodec.decode($0) }
        // An update without fields keeps the record it had before F1 (no extended byte).
        let plain = Event(type: .contactUpdate, contact: "c", at: 7, email: "a@example.com")
        #expect(EventCodec.encode(plain)[10] & 0x80 == 0)
    }

    @Test("F1 an event record with an unknown field value type, a non-finite number or an empty field list is corrupt")
    func eventGarbage() throws {
        let string = Event(
            type: .contactUpdate, contact: "c", at: 1, fields: [FieldUpdate(name: "a", value: .string(""))])
        var tag = EventCodec.encode(string)
        tag[tag.count - 2] = 7  // the value type byte, before the empty string's length
        CodecTests.expectCorrupt(tag, table: "events", containing: "field value type 7") {
            _ = try EventCodec.decode($0)
        }

        let number = Event(
            type: .contactUpdate, contact: "c", at: 1, fields: [FieldUpdate(name: "a", value: .number(1))])
        var nan = EventCodec.encode(number)
        nan.replaceSubrange(
            (nan.count - 8)..., with: withUnsafeBytes(of: Double.nan.bitPattern.littleEndian, Array.init))
        CodecTests.expectCorrupt(nan, table: "events", containing: "not finite") { _ = try EventCodec.decode($0) }

        var empty = EventCodec.encode(number)
        let countIndex = empty.count - 8 - 1 - 1 - 1 - 1  // count · name length · "a" · tag · 8 bytes
        #expect(empty[countIndex] == 1)
        empty[countIndex] = 0
        empty.removeSubrange((countIndex + 1)...)
        CodecTests.expectCorrupt(empty, table: "events", containing: "0 fields") { _ = try EventCodec.decode($0) }

        var reserved = EventCodec.encode(number)
        reserved[11] |= 0x80  // the extended bits' unused bit 7
        CodecTests.expectCorrupt(reserved, table: "events", containing: "presence") { _ = try EventCodec.decode($0) }
    }

    static let state = ContactState(
        points: 80, groups: ["fit": 30], fields: ["size": .number(800), "title": .string("CTO"), "z": .number(0.1)],
        fieldAwards: ["big": FieldAward(group: "fit", delta: 30), "cto": FieldAward(group: nil, delta: Int64.min)])

    @Test("F1 F2 a contact record with fields and fit-score awards round-trips; truncations are corrupt `contacts`")
    func contactRoundTrip() throws {
        let bytes = ContactCodec.encode(Self.state)
        #expect(try bytes.withUnsafeBytes { try ContactCodec.decode($0) } == Self.state)
        CodecTests.expectEveryTruncationRefused(bytes, table: "contacts") { _ = try ContactCodec.decode($0) }
        // Canonical: the same state encodes to the same bytes whatever the dictionaries' order (verify compares bytes).
        var copy = ContactState(points: 80, groups: ["fit": 30])
        for name in ["z", "title", "size"] { copy.fields[name] = Self.state.fields[name] }
        copy.fieldAwards = Self.state.fieldAwards
        #expect(ContactCodec.encode(copy) == bytes)
    }

    @Test("F1 a contact record with more than 100 fields or an unknown value type is corrupt, not misread")
    func contactGarbage() throws {
        let many = ContactState(
            fields: Dictionary(uniqueKeysWithValues: (0..<101).map { ("f\($0)", FieldValue.number(1)) }))
        CodecTests.expectCorrupt(ContactCodec.encode(many), table: "contacts", containing: "101 fields") {
            _ = try ContactCodec.decode($0)
        }
        var tag = ContactCodec.encode(ContactState(fields: ["a": .string("")]))
        tag[tag.count - 4] = 5  // value type · empty string length · zero awards · the known flag
        CodecTests.expectCorrupt(tag, table: "contacts", containing: "field value type 5") {
            _ = try ContactCodec.decode($0)
        }
    }

    @Test("F2 the audit codec round-trips the field kind")
    func auditFieldKind() throws {
        let entry = AuditEntry(
            seq: 7, eventID: nil, at: 3, kind: .field, action: "big", version: 2, group: "fit", delta: -30,
            scoreAfter: 0, reason: "no longer size ≥ 500: size is 20; award of 30 reversed")
        let bytes = AuditCodec.encode(entry)
        #expect(try bytes.withUnsafeBytes { try AuditCodec.decode($0, seq: 7) } == entry)
        #expect(bytes[1] == 6)
    }
}
