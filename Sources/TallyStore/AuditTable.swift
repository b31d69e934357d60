public import TallyCore

/// The binary encoding of an audit entry (A1), stored under the key `varint length + contact · u64 BE seq ·
/// u32 BE index` (the index orders several entries of one event), so that one contact's entries are one key range
/// in log order.
///
/// One event makes at most one award per point action of its type (a manual change or an import, one), so the
/// index is below the number of actions in a rules file; 32 bits cannot overflow (a rules file is at most 1 MiB
/// through the API, and a u8 index did: 300 matching actions overwrote each other's entries from the 257th on).
///
/// ```
/// u8 format (1) · u8 kind · i64 LE at · i64 LE version · i64 LE delta · i64 LE score after
/// · u8 presence bits (event id, group, origin) · action · reason · [event id] · [group] · [origin]
/// (strings: varint length + UTF-8)
/// ```
enum AuditCodec {
    static let format: UInt8 = 1

    /// The bytes of the index after the sequence number.
    static let indexWidth = 4

    static func key(contact: String, seq: UInt64, index: UInt32) -> [UInt8] {
        var writer = ByteWriter()
        writer.string(contact)
        writer.bytes += SequenceKey.encode(seq)
        withUnsafeBytes(of: index.bigEndian) { writer.bytes.append(contentsOf: $0) }
        return writer.bytes
    }

    static func prefix(contact: String) -> [UInt8] { ContactKey.prefix(contact) }

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

/// A batch's audit entries, encoded as they are made and written in key order at the end of the batch: one
/// contact's entries then land on neighbouring pages, where event order would scatter them over the table. Each
/// entry is also a score change of the change feed (L2): `changes` maps its `u64 BE seq · u32 BE index` to the
/// contact id, in log order.
public struct AuditBatch {
    private var records: [(key: [UInt8], value: [UInt8])] = []
    private var changes: [(key: [UInt8], contact: String)] = []

    public init() {}

    /// Adds the audit entries of one event's awards to one contact, indexed from `firstIndex` (a clock event's
    /// aging pass numbers its entries across contacts and transactions).
    public mutating func add(contact: String, _ entries: [AuditEntry], firstIndex: UInt32 = 0) {
        // An event's awards are bounded by the actions of a rules file (see AuditCodec), far below 2^32; a clock
        // event's by the awards due, which the pass counts in a u32.
        precondition(
            entries.count <= Int(UInt32.max - firstIndex), "more audit entries for one event than the index holds")
        for (offset, entry) in entries.enumerated() {
            let index = firstIndex + UInt32(offset)
            records.append((AuditCodec.key(contact: contact, seq: entry.seq, index: index), AuditCodec.encode(entry)))
            changes.append((ChangeCodec.key(seq: entry.seq, index: index), contact))
        }
    }

    fileprivate mutating func sorted() -> [(key: [UInt8], value: [UInt8])] {
        records.sort { keyPrecedes($0.key, $1.key) }
        return records
    }

    fileprivate mutating func sortedChanges() -> [(key: [UInt8], contact: String)] {
        changes.sort { keyPrecedes($0.key, $1.key) }
        return changes
    }
}

/// The change feed's index (L2): `u64 BE seq · u32 BE index` (an audit entry's position) → the contact id.
enum ChangeCodec {
    static func key(seq: UInt64, index: UInt32) -> [UInt8] {
        SequenceKey.encode(seq) + withUnsafeBytes(of: index.bigEndian) { Array($0) }
    }
}

extension ProjectionTransaction {
    /// Records a batch's audit entries, in key order.
    public func addAudit(_ batch: AuditBatch) throws {
        var batch = batch
        for record in batch.sorted() { try txn.put(store.audit, record.key, record.value) }
        for change in batch.sortedChanges() { try txn.put(store.changes, change.key, Array(change.contact.utf8)) }
    }

    /// Visits the score changes in log order from the position after (`seq`, `index`) — after every change of
    /// `seq` when `index` is nil — until `body` returns false: each with its position, contact and audit entry.
    public func forEachChange(
        after seq: UInt64, index: UInt32?, _ body: (UInt64, UInt32, String, AuditEntry) throws -> Bool
    ) throws {
        let start =
            index.map { ChangeCodec.key(seq: seq, index: $0) + [0] }
            ?? ChangeCodec.key(seq: seq &+ 1, index: 0)
        guard seq < .max || index != nil else { return }
        try txn.scan(store.changes, from: start) { key, value in
            guard key.count == 12 else {
                throw CorruptRecordError(table: "changes", message: "key of \(key.count) bytes")
            }
            let seq = SequenceKey.decode(UnsafeRawBufferPointer(rebasing: key[0..<8])) ?? 0
            let index = key[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let contact = String(decoding: value, as: UTF8.self)
            let auditKey = AuditCodec.key(contact: contact, seq: seq, index: index)
            guard let raw = try txn.get(store.audit, auditKey) else {
                throw CorruptRecordError(
                    table: "changes", message: "no audit entry for \(seq).\(index) of \"\(contact)\"")
            }
            return try body(seq, index, contact, try raw.withUnsafeBytes { try AuditCodec.decode($0, seq: seq) })
        }
    }

    /// A contact's audit entries in log order (A2).
    public func audit(contact: String) throws -> [AuditEntry] {
        var entries: [AuditEntry] = []
        try forEachAudit(contact: contact) { entries.append($0) }
        return entries
    }

    /// Visits a contact's audit entries in log order, one decoded at a time.
    public func forEachAudit(contact: String, _ body: (AuditEntry) throws -> Void) throws {
        let prefix = AuditCodec.prefix(contact: contact)
        try txn.scan(store.audit, from: prefix) { key, value in
            guard key.starts(with: prefix) else { return false }
            // The length-prefixed contact makes every key with this prefix the contact's: one of another length is
            // damage, not the end of the range (ending there would hide the rest of the trail).
            guard key.count == prefix.count + 8 + AuditCodec.indexWidth else {
                throw CorruptRecordError(
                    table: "audit", message: "key of \(key.count) bytes for contact \"\(contact)\"")
            }
            let seq = SequenceKey.decode(UnsafeRawBufferPointer(rebasing: key[prefix.count..<(prefix.count + 8)])) ?? 0
            try body(try AuditCodec.decode(value, seq: seq))
            return true
        }
    }
}
