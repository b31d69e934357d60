// libFuzzer target: the binary event encoding of the log. Built and run by scripts/fuzz.
//
// Written against the public API only (`EventCodec.encode(_:)`, `EventCodec.decode(_: [UInt8])`, the `Event`
// initialiser), so that new format versions keep it compiling. The events it builds set every field `Event` has
// today (behaviour and administrative ones); a new field should be added to `ByteSource.event()` and `same`.
import TallyCore
import TallyStore

@_cdecl("LLVMFuzzerTestOneInput")
public func eventCodecFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // 1. Arbitrary bytes as a stored record: an error or an event, never a crash. What decodes re-encodes to a
    // record that decodes to the same event, byte for byte the same once re-encoded again.
    if let event = try? EventCodec.decode(bytes) {
        let encoded = EventCodec.encode(event)
        roundTrip(event, encoded)
    }

    // 2. An event built from the bytes: decode(encode(e)) == e.
    var source = ByteSource(bytes)
    let event = source.event()
    roundTrip(event, EventCodec.encode(event))
    return 0
}

private func roundTrip(_ event: Event, _ encoded: [UInt8]) {
    let decoded: Event
    do {
        decoded = try EventCodec.decode(encoded)
    } catch {
        fatalError("event-codec: encode(\(event)) does not decode: \(error); bytes \(hex(encoded))")
    }
    guard decoded == event, same(decoded, event) else {
        fatalError("event-codec: \(event) round-trips as \(decoded); bytes \(hex(encoded))")
    }
    guard EventCodec.encode(decoded) == encoded else { fatalError("event-codec: encoding is not deterministic") }
    // A record cut short or extended by a byte is an error, never a crash, and never the same event.
    if !encoded.isEmpty, let cut = try? EventCodec.decode(Array(encoded.dropLast())), cut == event {
        fatalError("event-codec: a truncated record decodes to the same event")
    }
    if let longer = try? EventCodec.decode(encoded + [0]), longer == event {
        fatalError("event-codec: a record with a trailing byte decodes to the same event")
    }
}

/// String equality is canonical equivalence; the log must keep the exact bytes.
private func same(_ a: Event, _ b: Event) -> Bool {
    let fields: [(Event) -> String?] = [
        { $0.contact }, \.id, \.item, \.url, \.session, \.email, \.ownerEmail, \.group, \.reason, \.text,
    ]
    func bytes(_ update: FieldUpdate) -> [UInt8] {
        switch update.value {
        case .string(let text)?: Array(update.name.utf8) + [1] + Array(text.utf8)
        case .number(let number)?: Array(update.name.utf8) + [2] + withUnsafeBytes(of: number.bitPattern, Array.init)
        case nil: Array(update.name.utf8) + [0]
        }
    }
    return fields.allSatisfy { field in field(a).map { Array($0.utf8) } == field(b).map { Array($0.utf8) } }
        && a.fields.map(bytes) == b.fields.map(bytes)
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// Derives the fields of an event deterministically from the fuzz input.
private struct ByteSource {
    var bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    mutating func byte() -> UInt8 { bytes.popFirst() ?? 0 }

    mutating func int64() -> Int64 {
        var value: UInt64 = 0
        for offset in 0..<8 { value |= UInt64(byte()) << (8 * UInt64(offset)) }
        return Int64(bitPattern: value)
    }

    /// A string of up to 255 bytes taken from the input, made valid UTF-8 (invalid bytes become U+FFFD) or,
    /// every other time, a run of arbitrary Unicode scalars.
    mutating func string() -> String {
        let length = Int(byte())
        let raw = bytes.prefix(length)
        bytes = bytes.dropFirst(length)
        if length % 2 == 0 { return String(decoding: raw, as: UTF8.self) }
        var text = ""
        var iterator = raw.makeIterator()
        while let a = iterator.next() {
            let value = UInt32(a) << 16 | UInt32(iterator.next() ?? 0) << 8 | UInt32(iterator.next() ?? 0)
            text.unicodeScalars.append(Unicode.Scalar(value % 0x11_0000) ?? "\u{FFFD}")
        }
        return text
    }

    mutating func event() -> Event {
        let type = EventType.allCases[Int(byte()) % EventType.allCases.count]
        let at = int64()
        let present = UInt16(byte()) | UInt16(byte()) << 8
        let contact = string()
        func has(_ bit: UInt16) -> Bool { present & (1 << bit) != 0 }
        func optional(_ bit: UInt16) -> String? { has(bit) ? string() : nil }
        let id = optional(0)
        let item = optional(1)
        let url = optional(2)
        let session = optional(3)
        let email = optional(4)
        let ownerEmail = optional(5)
        let group = optional(6)
        let reason = optional(7)
        let text = optional(8)
        let value = has(9) ? int64() : nil
        let operation = has(10) ? PointsOperation.allCases[Int(byte()) % PointsOperation.allCases.count] : nil
        // F1: 1–4 fields within the limits the decoder enforces (names of 1–64 bytes, strings of at most 1 KiB,
        // finite numbers), else the record is corrupt by design.
        var fields: [FieldUpdate] = []
        if has(11) {
            for _ in 0...(byte() % 4) {
                let length = 1 + Int(byte() % 64)
                let name = String(decoding: (0..<length).map { _ in UInt8(ascii: "a") + byte() % 26 }, as: UTF8.self)
                let value: FieldValue?
                switch byte() % 3 {
                case 0: value = nil
                case 1: value = .string(string())
                default:
                    let number = Double(bitPattern: UInt64(bitPattern: int64()))
                    value = .number(number.isFinite ? number : 0)
                }
                fields.append(FieldUpdate(name: name, value: value))
            }
        }
        return Event(
            type: type, contact: contact, at: at, id: id, item: item, url: url, session: session, email: email,
            ownerEmail: ownerEmail, group: group, reason: reason, text: text, value: value, operation: operation,
            fields: fields)
    }
}
