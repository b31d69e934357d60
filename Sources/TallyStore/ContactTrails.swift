public import TallyCore

/// Where a contact's chains end: the first and last of its events in `history` and its last entry in `audit`
/// (nil: none). Both tables are in log order, so that a batch appends to them; a contact's records in each are a
/// chain, every record naming the contact's previous one, walked back from the trail.
///
/// ```
/// trails:  contact id → u64 BE first event seq · u64 BE last event seq · u64 BE last entry's seq
///                       · u32 BE last entry's index      (a seq of 0: none; sequence numbers start at 1)
/// history: u64 BE seq · contact id → u64 BE the seq of the contact's previous event (0: the first)
/// ```
///
/// `history` lists, per contact (the one its events resolve to), the sequence numbers of its events: behaviours,
/// administrative changes, the merges it took part in and the delivery outcomes of its side effects. A merge
/// (I3) and an erasure (I8) read a contact's events through it, at a cost that follows the contact's history.
public struct Trail: Sendable, Equatable {
    public var firstEvent: UInt64?
    public var lastEvent: UInt64?
    public var lastAward: AuditPosition?

    public init(firstEvent: UInt64? = nil, lastEvent: UInt64? = nil, lastAward: AuditPosition? = nil) {
        self.firstEvent = firstEvent
        self.lastEvent = lastEvent
        self.lastAward = lastAward
    }

    var isEmpty: Bool { lastEvent == nil && lastAward == nil }

    /// Appends an event to the history chain.
    mutating func add(event seq: UInt64) {
        if firstEvent == nil { firstEvent = seq }
        lastEvent = seq
    }
}

enum TrailCodec {
    static let width = 28

    static func encode(_ trail: Trail) -> [UInt8] {
        var writer = ByteWriter(capacity: width)
        writer.bigEndian(trail.firstEvent ?? 0)
        writer.bigEndian(trail.lastEvent ?? 0)
        writer.bigEndian(trail.lastAward?.seq ?? 0)
        writer.bigEndian(trail.lastAward?.index ?? 0)
        return writer.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(CorruptRecordError) -> Trail {
        guard bytes.count == width else {
            throw CorruptRecordError(table: "trails", message: "record of \(bytes.count) bytes")
        }
        var reader = ByteReader(bytes, table: "trails")
        let first = try reader.bigEndian64()
        let last = try reader.bigEndian64()
        let award = AuditPosition(seq: try reader.bigEndian64(), index: try reader.bigEndian32())
        guard (first == 0) == (last == 0), first <= last else {
            throw reader.corrupt("history from \(first) to \(last)")
        }
        return Trail(
            firstEvent: first == 0 ? nil : first, lastEvent: last == 0 ? nil : last,
            lastAward: award.seq == 0 ? nil : award)
    }
}

enum HistoryCodec {
    static func key(_ seq: UInt64, _ contact: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 8 + contact.utf8.count)
        writer.bigEndian(seq)
        writer.bytes += contact.utf8
        return writer.bytes
    }

    /// The previous event a history record names (nil: none), which must precede the record's own `seq`.
    static func previous(_ value: UnsafeRawBufferPointer, of seq: UInt64) throws(CorruptRecordError) -> UInt64? {
        guard let previous = SequenceKey.decode(value), previous < seq else {
            throw CorruptRecordError(table: "history", message: "event \(seq) chained to a bad previous one")
        }
        return previous == 0 ? nil : previous
    }
}

/// A batch's appends to the contacts' trails: its events (`history`) and audit entries (A1), in log order, written
/// by ``ProjectionTransaction/append(_:)``, which reads and writes each contact's ``Trail`` once.
public struct TrailBatch: Sendable {
    fileprivate var events: [(contact: String, seq: UInt64)] = []
    fileprivate var awards: [(contact: String, position: AuditPosition, entry: [UInt8])] = []

    public init() {}

    /// Records that the event at `seq` is `contact`'s.
    public mutating func event(_ contact: String, seq: UInt64) { events.append((contact, seq)) }

    /// Adds the audit entries of one event's awards to one contact, indexed from `firstIndex` (a clock event's
    /// aging pass numbers its entries across contacts and transactions).
    public mutating func awards(contact: String, _ entries: [AuditEntry], firstIndex: UInt32 = 0) {
        // An event's awards are bounded by the actions of a rules file (see AuditCodec), far below 2^32; a clock
        // event's by the awards due, which the pass counts in a u32.
        precondition(
            entries.count <= Int(UInt32.max - firstIndex), "more audit entries for one event than the index holds")
        for (offset, entry) in entries.enumerated() {
            let position = AuditPosition(seq: entry.seq, index: firstIndex + UInt32(offset))
            awards.append((contact, position, AuditCodec.encode(entry)))
        }
    }
}

/// A batch appended a record that does not come after its contact's last one: the chains are in log order, and a
/// fold that appends out of order is a bug, refused before it writes.
public struct TrailOrderError: Error, CustomStringConvertible {
    public var contact: String
    public var table: String

    public var description: String {
        "an append to `\(table)` for \"\(contact)\" is not after the contact's last record "
            + "(the fold appends in log order)"
    }
}

extension ProjectionTransaction {
    // MARK: trails

    /// A contact's trail (empty for a contact without events or entries).
    public func trail(_ contact: String) throws -> Trail {
        try txn.get(store.trails, Array(contact.utf8)).map { value in
            try value.withUnsafeBytes { try TrailCodec.decode($0) }
        } ?? Trail()
    }

    func setTrail(_ contact: String, _ trail: Trail) throws {
        if trail.isEmpty {
            _ = try txn.delete(store.trails, Array(contact.utf8))
        } else {
            try txn.put(store.trails, Array(contact.utf8), TrailCodec.encode(trail))
        }
    }

    /// Appends a batch's events and audit entries to their tables' ends, chained to each contact's previous ones,
    /// and writes the trails it moved, in key order.
    public func append(_ batch: TrailBatch) throws {
        var trails: [ByteString: Trail] = [:]
        for (contact, seq) in batch.events {
            let key = ByteString(contact)
            var trail = try trails[key] ?? self.trail(contact)
            guard seq > trail.lastEvent ?? 0 else { throw TrailOrderError(contact: contact, table: "history") }
            try txn.put(store.history, HistoryCodec.key(seq, contact), SequenceKey.encode(trail.lastEvent ?? 0))
            trail.add(event: seq)
            trails[key] = trail
        }
        for award in batch.awards {
            let key = ByteString(award.contact)
            var trail = try trails[key] ?? self.trail(award.contact)
            guard trail.lastAward.map({ $0 < award.position }) ?? true else {
                throw TrailOrderError(contact: award.contact, table: "audit")
            }
            let record = AuditCodec.record(contact: award.contact, previous: trail.lastAward, entry: award.entry)
            try txn.put(store.audit, AuditCodec.key(award.position), record)
            trail.lastAward = award.position
            trails[key] = trail
        }
        for (contact, trail) in trails.sorted(by: { $0.key < $1.key }) { try setTrail(contact.string, trail) }
    }

    // MARK: history

    /// Records that the event at `seq` is `contact`'s.
    public func addHistory(_ contact: String, seq: UInt64) throws {
        var batch = TrailBatch()
        batch.event(contact, seq: seq)
        try append(batch)
    }

    /// The sequence numbers of `contact`'s events, in log order: its chain walked back from the trail's last.
    public func history(_ contact: String) throws -> [UInt64] {
        var seqs: [UInt64] = []
        var next = try trail(contact).lastEvent
        while let seq = next {
            guard let value = try txn.get(store.history, HistoryCodec.key(seq, contact)) else {
                throw CorruptRecordError(table: "history", message: "no event \(seq) in the trail of \"\(contact)\"")
            }
            seqs.append(seq)
            next = try value.withUnsafeBytes { try HistoryCodec.previous($0, of: seq) }
        }
        seqs.reverse()
        return seqs
    }

    /// The sequence number of `contact`'s first event, nil for a contact without history.
    public func firstHistory(_ contact: String) throws -> UInt64? { try trail(contact).firstEvent }

    /// Removes `contact`'s history and returns it.
    @discardableResult
    public func removeHistory(_ contact: String) throws -> [UInt64] {
        let seqs = try history(contact)
        for seq in seqs { _ = try txn.delete(store.history, HistoryCodec.key(seq, contact)) }
        var trail = try self.trail(contact)
        (trail.firstEvent, trail.lastEvent) = (nil, nil)
        try setTrail(contact, trail)
        return seqs
    }

    /// Moves `from`'s history into `into`'s: one chain over the union of both, in log order.
    public func moveHistory(from: String, into: String) throws {
        let moved = try removeHistory(from)
        guard !moved.isEmpty else { return }
        let union = Set(moved).union(try history(into)).sorted()
        var previous: UInt64 = 0
        for seq in union {
            try txn.put(store.history, HistoryCodec.key(seq, into), SequenceKey.encode(previous))
            previous = seq
        }
        var trail = try self.trail(into)
        (trail.firstEvent, trail.lastEvent) = (union.first, union.last)
        try setTrail(into, trail)
    }

    // MARK: audit trails

    /// Moves `from`'s audit trail into `into`'s (I4): each entry keeps its position in the log and is marked with
    /// the contact it was made for, and both contacts' entries become one chain, so that the change feed names
    /// `into` from now on.
    public func moveAudit(from: String, into: String) throws {
        let moved = try auditChain(from)
        guard !moved.isEmpty else { return }
        var entries: [(position: AuditPosition, entry: AuditEntry)] = []
        for position in moved {
            var entry = try auditEntry(at: position)
            entry.origin = entry.origin ?? from
            entries.append((position, entry))
        }
        for position in try auditChain(into) { entries.append((position, try auditEntry(at: position))) }
        entries.sort { $0.position < $1.position }
        var previous: AuditPosition?
        for (position, entry) in entries {
            let record = AuditCodec.record(contact: into, previous: previous, entry: AuditCodec.encode(entry))
            try txn.put(store.audit, AuditCodec.key(position), record)
            previous = position
        }
        var fromTrail = try trail(from)
        fromTrail.lastAward = nil
        try setTrail(from, fromTrail)
        var intoTrail = try trail(into)
        intoTrail.lastAward = previous
        try setTrail(into, intoTrail)
    }

    /// Removes `contact`'s audit entries (I8), and with them its positions in the change feed.
    func removeAudit(_ contact: String) throws {
        for position in try auditChain(contact) { _ = try txn.delete(store.audit, AuditCodec.key(position)) }
        var trail = try self.trail(contact)
        trail.lastAward = nil
        try setTrail(contact, trail)
    }
}

extension ProjectionStore {
    /// The trails checked against the chains they end (part of ``indexDifferences(limit:)``): every `history` and
    /// `audit` record must name its contact's previous one, and `trails` must equal the ends derived from them.
    func trailDifferences(_ txn: LMDBTransaction, limit: Int) throws -> [String] {
        var found: [String] = []
        var derived: [ByteString: Trail] = [:]
        try txn.scan(history) { key, value in
            guard key.count > 8 else {
                throw CorruptRecordError(table: "history", message: "key of \(key.count) bytes")
            }
            let seq = SequenceKey.decode(UnsafeRawBufferPointer(rebasing: key[0..<8])) ?? 0
            let contact = ByteString(String(decoding: UnsafeRawBufferPointer(rebasing: key[8...]), as: UTF8.self))
            var trail = derived[contact] ?? Trail()
            if try HistoryCodec.previous(value, of: seq) != trail.lastEvent {
                found.append("history: event \(seq) of \"\(contact)\" is not chained to the contact's previous one")
            }
            trail.add(event: seq)
            derived[contact] = trail
            return found.count < limit
        }
        try txn.scan(audit) { key, value in
            let position = try AuditCodec.position(key)
            let record = try AuditCodec.decodeRecord(value, at: position)
            let contact = ByteString(record.contact)
            var trail = derived[contact] ?? Trail()
            if record.previous != trail.lastAward {
                found.append(
                    "audit: entry \(position.seq).\(position.index) of \"\(contact)\" is not chained to the contact's "
                        + "previous one")
            }
            trail.lastAward = position
            derived[contact] = trail
            return found.count < limit
        }
        var stored = 0
        try txn.scan(trails) { key, value in
            stored += 1
            let contact = ByteString(String(decoding: key, as: UTF8.self))
            if try TrailCodec.decode(value) != derived[contact] {
                found.append("trails: the trail of \"\(contact)\" differs from the ends of its chains")
            }
            return found.count < limit
        }
        if stored != derived.count {
            found.append("trails: \(stored) records, \(derived.count) contacts with history or audit entries")
        }
        return Array(found.prefix(limit))
    }
}
