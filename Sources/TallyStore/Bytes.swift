import Glibc
import TallyCore

/// Appends the primitives of Tally's binary encodings to a byte buffer.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func int64(_ value: Int64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Big-endian, as keys hold numbers (byte order is numeric order).
    mutating func bigEndian(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func bigEndian(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Unsigned LEB128.
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func string(_ value: String) {
        varint(UInt64(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }

    /// A field's value (F1): `u8 1` + string, or `u8 2` + the double's IEEE 754 bits as i64 LE.
    mutating func fieldValue(_ value: FieldValue) {
        switch value {
        case .string(let text):
            u8(1)
            string(text)
        case .number(let number):
            u8(2)
            int64(Int64(bitPattern: number.bitPattern))
        }
    }

    /// A presence byte, then the string when there is one.
    mutating func optionalString(_ value: String?) {
        u8(value == nil ? 0 : 1)
        if let value { string(value) }
    }

    /// The count, then the strings in order (canonical whatever the set's iteration order); none or one need no
    /// sorting, and most of a contact's sets hold that few.
    mutating func sortedStrings(_ set: Set<String>) {
        varint(UInt64(set.count))
        if set.count < 2 {
            for element in set { string(element) }
        } else {
            for element in set.sorted(by: ByteString.precedes) { string(element) }  // byte order: canonical bytes
        }
    }
}

/// A malformed record in the store: its table and what is wrong.
public struct CorruptRecordError: Error, Sendable, CustomStringConvertible {
    public init(table: String, message: String) {
        self.table = table
        self.message = message
    }

    public var table: String
    public var message: String

    public var description: String { "corrupt record in \(table): \(message)" }
}

/// Reads the primitives written by ``ByteWriter``, failing cleanly on truncated or malformed input.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let table: String
    var index = 0

    init(_ bytes: UnsafeRawBufferPointer, table: String) {
        self.bytes = bytes
        self.table = table
    }

    var isAtEnd: Bool { index == bytes.count }

    func corrupt(_ message: String) -> CorruptRecordError { CorruptRecordError(table: table, message: message) }

    /// A field's value (see ``ByteWriter/fieldValue(_:)``); `tag` is its type byte, already read.
    mutating func fieldValue(tag: UInt8) throws(CorruptRecordError) -> FieldValue {
        switch tag {
        case 1:
            return .string(try string(limit: FieldLimits.stringBytes.upperBound))
        case 2:
            let number = Double(bitPattern: UInt64(bitPattern: try int64()))
            guard number.isFinite else { throw corrupt("a field's number is not finite") }
            return .number(number)
        default:
            throw corrupt("unknown field value type \(tag)")
        }
    }

    mutating func u8() throws(CorruptRecordError) -> UInt8 {
        guard index < bytes.count else { throw corrupt("truncated") }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func int64() throws(CorruptRecordError) -> Int64 {
        guard index + 8 <= bytes.count else { throw corrupt("truncated") }
        var value: UInt64 = 0
        for offset in 0..<8 { value |= UInt64(bytes[index + offset]) << (8 * offset) }
        index += 8
        return Int64(bitPattern: value)
    }

    mutating func bigEndian64() throws(CorruptRecordError) -> UInt64 {
        guard index + 8 <= bytes.count else { throw corrupt("truncated") }
        defer { index += 8 }
        return bytes[index..<(index + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func bigEndian32() throws(CorruptRecordError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw corrupt("truncated") }
        defer { index += 4 }
        return bytes[index..<(index + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func varint() throws(CorruptRecordError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            guard shift < 64 else { throw corrupt("varint too long") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func string(limit: Int = 1 << 20) throws(CorruptRecordError) -> String {
        let length = try varint()
        guard length <= UInt64(limit), index + Int(length) <= bytes.count else { throw corrupt("bad string length") }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[index..<(index + Int(length))])
        index += Int(length)
        guard let text = UTF8Text.string(raw) else { throw corrupt("invalid UTF-8") }
        return text
    }
}

/// Big-endian encoding of log sequence numbers, so that LMDB's byte order is numeric order.
public enum SequenceKey {
    public static func encode(_ seq: UInt64) -> [UInt8] {
        withUnsafeBytes(of: seq.bigEndian) { Array($0) }
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// An environment written in an on-disk format this version of Tally does not read.
public struct UnsupportedFormatError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var found: Int
    public var supported: Int
    /// What to do about it, when more can be said than "run the release that wrote it".
    public var advice: String?

    public var description: String {
        "\(path) holds on-disk format \(found), and this version of Tally reads format \(supported): "
            + (advice ?? "run the Tally release that wrote it, or see Docs/format.md on upgrading")
    }
}

/// The on-disk format version stored in each environment (`meta` → `format`, one byte), checked at open so that
/// data from another version is refused with a clear message instead of being misread.
enum StoreFormat {
    static let key = Array("format".utf8)

    /// Records `supported` in a new environment; throws when an existing one holds another format.
    static func check(
        _ environment: LMDBEnvironment, _ meta: LMDBDatabase, supported: UInt8,
        advice: ((_ found: Int) -> String?)? = nil
    ) throws {
        try environment.write { txn in
            if let stored = try txn.get(meta, key) {
                guard stored == [supported] else {
                    let found = Int(stored.first ?? 0)
                    throw UnsupportedFormatError(
                        path: environment.path, found: found, supported: Int(supported), advice: advice?(found))
                }
            } else {
                try txn.put(meta, key, [supported])
            }
        }
    }
}

/// The prefix of every key that starts with a contact id: its LEB128 length, then its bytes, so that one contact's
/// keys are one range and no id's range holds another's (`audit`, `url_visits`, `sessions`, `history`).
enum ContactKey {
    static func prefix(_ contact: String) -> [UInt8] {
        var writer = ByteWriter()
        writer.string(contact)
        return writer.bytes
    }
}

/// Byte order of keys, as LMDB compares them (`memcmp`, then the shorter first): what a batch sorts its keys by
/// before writing them in key order.
func keyPrecedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    let common = min(a.count, b.count)
    if common > 0 {
        let order = a.withUnsafeBytes { a in
            b.withUnsafeBytes { b in
                guard let a = a.baseAddress, let b = b.baseAddress else { return Int32(0) }  // not empty: never nil
                return memcmp(a, b, common)
            }
        }
        if order != 0 { return order < 0 }
    }
    return a.count < b.count
}

/// A key's bytes as a dictionary key: hashed in one call over the bytes (an `[UInt8]` hashes byte by byte).
struct KeyBytes: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
