public import TallyCore

/// The position of an audit entry in log order (A1): the causing event's sequence number, and the index that
/// orders several entries of one event (a clock event's aging pass numbers its entries across contacts).
public struct AuditPosition: Sendable, Hashable, Comparable {
    public var seq: UInt64
    public var index: UInt32

    public init(seq: UInt64, index: UInt32) {
        self.seq = seq
        self.index = index
    }

    public static func < (a: AuditPosition, b: AuditPosition) -> Bool { (a.seq, a.index) < (b.seq, b.index) }
}

/// The audit table (A1) in log order, which is also the change feed (L2): one record per entry under its position,
/// `u64 BE seq · u32 BE index`, so that a batch's entries are appended at the table's end instead of inserted
/// into every contact's range. The record names its contact and the position of the contact's previous entry: a
/// contact's entries are a chain, walked back from the last one, which the contact's trail holds (see
/// ``Trail``).
///
/// One event makes at most one award per point action of its type (a manual change or an import, one), so the
/// index is below the number of actions in a rules file; 32 bits cannot overflow (a rules file is at most 1 MiB
/// through the API, and a u8 index did: 300 matching actions overwrote each other's entries from the 257th on).
///
/// ```
/// record: LEB128 length + contact id · u64 BE previous seq · u32 BE previous index (seq 0: the first) · entry
/// entry:  u8 format (1) · u8 kind · i64 LE at · i64 LE version · i64 LE delta · i64 LE score after
///         · u8 presence bits (event id, group, origin) · action · reason · [event id] · [group] · [origin]
///         (strings: varint length + UTF-8)
/// ```
enum AuditCodec {
    static let format: UInt8 = 1

    /// The bytes of a key: the sequence number and the index.
    static let keyWidth = 12

    static func key(_ position: AuditPosition) -> [UInt8] {
        var writer = ByteWriter(capacity: keyWidth)
        writer.bigEndian(position.seq)
        writer.bigEndian(position.index)
        return writer.bytes
    }

    static func position(_ key: UnsafeRawBufferPointer) throws(CorruptRecordError) -> AuditPosition {
        guard key.count == keyWidth else {
            throw CorruptRecordError(table: "audit", message: "key of \(key.count) bytes")
        }
        var reader = ByteReader(key, table: "audit")
        return AuditPosition(seq: try reader.bigEndian64(), index: try reader.bigEndian32())
    }

    /// A record: the contact, the position of its previous entry, and the encoded entry.
    static func record(contact: String, previous: AuditPosition?, entry: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: contact.utf8.count + 14 + entry.count)
        writer.string(contact)
        writer.bigEndian(previous?.seq ?? 0)
        writer.bigEndian(previous?.index ?? 0)
        writer.bytes += entry
        return writer.bytes
    }

    /// A record's contact and the position of the contact's previous entry (the record is at `position`), and
    /// where its entry starts.
    static func header(
        _ bytes: UnsafeRawBufferPointer, at position: AuditPosition
    ) throws(CorruptRecordError)
        -> (contact: String, previous: AuditPosition?, entryStart: Int)
    {
        var reader = ByteReader(bytes, table: "audit")
        let contact = try reader.string()
        let previous = AuditPosition(seq: try reader.bigEndian64(), index: try reader.bigEndian32())
        guard previous.seq == 0 || previous < position else {
            throw reader.corrupt("entry \(position.seq).\(position.index) chained to a later one")
        }
        return (contact, previous.seq == 0 ? nil : previous, reader.index)
    }

    /// A record's contact, the position of the contact's previous entry, and the entry (at `position`).
    static func decodeRecord(
        _ bytes: UnsafeRawBufferPointer, at position: AuditPosition
    ) throws(CorruptRecordError)
        -> (contact: String, previous: AuditPosition?, entry: AuditEntry)
    {
        let (contact, previous, start) = try header(bytes, at: position)
        return (contact, previous, try decode(UnsafeRawBufferPointer(rebasing: bytes[start...]), seq: position.seq))
    }

    static func encode(_ entry: AuditEntry) -> [UInt8] {
        var writer = ByteWriter(capacity: 48 + entry.reason.utf8.count)
        writer.u8(format)
        writer.u8(entry.kind.rawValue)
        writer.int64(entry.at)
        writer.int64(entry.version)
        writer.int64(entry.delta)
        writer.int64(entry.scoreAfter)
        writer.u8((entry.eventID == nil ? 0 : 1) | (entry.group == nil ? 0 : 2) | (entry.origin == nil ? 0 : 4))
        writer.string(entry.action)
        writer.string(entry.reason)
        if let id = entry.eventID { writer.string(id) }
        if let group = entry.group { writer.string(group) }
        if let origin = entry.origin { writer.string(origin) }
        return writer.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, seq: UInt64) throws(CorruptRecordError) -> AuditEntry {
        var reader = ByteReader(bytes, table: "audit")
        guard try reader.u8() == format else { throw reader.corrupt("unknown audit format") }
        let code = try reader.u8()
        guard let kind = Award.Kind(rawValue: code) else { throw reader.corrupt("unknown audit kind \(code)") }
        let at = try reader.int64()
        let version = try reader.int64()
        let delta = try reader.int64()
        let scoreAfter = try reader.int64()
        let bits = try reader.u8()
        guard bits & ~7 == 0 else { throw reader.corrupt("unknown presence bits") }
        let action = try reader.string()
        let reason = try reader.string()
        let eventID = bits & 1 != 0 ? try reader.string() : nil
        let group = bits & 2 != 0 ? try reader.string() : nil
        let origin = bits & 4 != 0 ? try reader.string() : nil
        guard reader.isAtEnd else { throw reader.corrupt("trailing bytes") }
        return AuditEntry(
            seq: seq, eventID: eventID, at: at, kind: kind, action: action, version: version, group: group,
            delta: delta, scoreAfter: scoreAfter, reason: reason, origin: origin)
    }
}

extension ProjectionTransaction {
    /// Visits the score changes in log order from the position after (`seq`, `index`) — after every change of
    /// `seq` when `index` is nil — until `body` returns false: each with its position, contact and audit entry.
    public func forEachChange(
        after seq: UInt64, index: UInt32?, _ body: (UInt64, UInt32, String, AuditEntry) throws -> Bool
    ) throws {
        guard seq < .max || index != nil else { return }
        let start =
            index.map { AuditCodec.key(AuditPosition(seq: seq, index: $0)) + [0] }
            ?? AuditCodec.key(AuditPosition(seq: seq &+ 1, index: 0))
        try txn.scan(store.audit, from: start) { key, value in
            let position = try AuditCodec.position(key)
            let record = try AuditCodec.decodeRecord(value, at: position)
            return try body(position.seq, position.index, record.contact, record.entry)
        }
    }

    /// A contact's audit entries in log order (A2).
    public func audit(contact: String) throws -> [AuditEntry] {
        var entries: [AuditEntry] = []
        try forEachAudit(contact: contact) { entries.append($0) }
        return entries
    }

    /// Visits a contact's audit entries in log order, one decoded at a time: memory follows the number of entries
    /// (16 bytes each, their positions), not their size.
    public func forEachAudit(contact: String, _ body: (AuditEntry) throws -> Void) throws {
        for position in try auditChain(contact) { try body(try auditEntry(at: position)) }
    }

    /// The audit entry at `position`.
    func auditEntry(at position: AuditPosition) throws -> AuditEntry {
        guard let value = try txn.get(store.audit, AuditCodec.key(position)) else {
            throw CorruptRecordError(table: "audit", message: "no entry \(position.seq).\(position.index)")
        }
        return try value.withUnsafeBytes { try AuditCodec.decodeRecord($0, at: position).entry }
    }

    /// The positions of a contact's audit entries, in log order: its chain walked back from the last entry its
    /// trail names. A broken chain is damage, reported rather than cut short (that would hide part of the trail).
    func auditChain(_ contact: String) throws -> [AuditPosition] {
        var chain: [AuditPosition] = []
        var next = try trail(contact).lastAward
        while let position = next {
            guard let value = try txn.get(store.audit, AuditCodec.key(position)) else {
                throw CorruptRecordError(
                    table: "audit", message: "no entry \(position.seq).\(position.index) in the trail of \"\(contact)\""
                )
            }
            let header = try value.withUnsafeBytes { try AuditCodec.header($0, at: position) }
            guard ByteString(header.contact) == ByteString(contact) else {
                throw CorruptRecordError(
                    table: "audit",
                    message: "entry \(position.seq).\(position.index) in the trail of \"\(contact)\" names "
                        + "\"\(header.contact)\"")
            }
            chain.append(position)
            next = header.previous
        }
        chain.reverse()
        return chain
    }
}
