public import TallyCore

/// The binary encoding of the due index (D1–D4): the `aging` table holds every award that will still expire or
/// decay, under its ``AgingKey``, so that a clock event reads what is due and nothing else.
///
/// ```
/// key:   u64 BE due time with its sign bit flipped (negative times sort first) · u64 BE seq · u32 BE index
/// value: u8 format (1) · u8 kind (1 expiry, 2 decay) · u8 next step · i64 LE awarded at · i64 LE delta
///        · i64 LE remaining · u8 step count · per step (i64 LE after · u8 keep) · contact · action · [group]
///        (strings: varint length + UTF-8; the group behind a presence byte)
/// ```
enum AgingCodec {
    static let format: UInt8 = 1
    static let keyWidth = 20

    static func key(_ key: AgingKey) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(keyWidth)
        withUnsafeBytes(of: (UInt64(bitPattern: key.due) ^ (1 << 63)).bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: key.seq.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: key.index.bigEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }

    static func decodeKey(_ bytes: UnsafeRawBufferPointer) throws(CorruptRecordError) -> AgingKey {
        guard bytes.count == keyWidth else {
            throw CorruptRecordError(table: "aging", message: "key of \(bytes.count) bytes, not \(keyWidth)")
        }
        func big<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var value: T = 0
            for byte in bytes[offset..<(offset + MemoryLayout<T>.size)] { value = value << 8 | T(byte) }
            return value
        }
        return AgingKey(
            due: Int64(bitPattern: big(0, UInt64.self) ^ (1 << 63)), seq: big(8, UInt64.self),
            index: big(16, UInt32.self))
    }

    static func encode(_ award: AgingAward) -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + award.contact.utf8.count + award.action.utf8.count)
        writer.u8(format)
        writer.u8(award.aging.kind == .expiry ? 1 : 2)
        writer.u8(UInt8(clamping: award.step))
        writer.int64(award.awardedAt)
        writer.int64(award.delta)
        writer.int64(award.remaining)
        writer.u8(UInt8(clamping: award.aging.steps.count))
        for step in award.aging.steps {
            writer.int64(step.after)
            writer.u8(UInt8(clamping: step.keep))
        }
        writer.string(award.contact)
        writer.string(award.action)
        writer.optionalString(award.group)
        return writer.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(CorruptRecordError) -> AgingAward {
        var reader = ByteReader(bytes, table: "aging")
        guard try reader.u8() == format else { throw reader.corrupt("unknown aging format") }
        let kind: Aging.Kind
        switch try reader.u8() {
        case 1: kind = .expiry
        case 2: kind = .decay
        case let code: throw reader.corrupt("unknown aging kind \(code)")
        }
        let step = Int(try reader.u8())
        let awardedAt = try reader.int64()
        let delta = try reader.int64()
        let remaining = try reader.int64()
        let count = Int(try reader.u8())
        guard step < count else { throw reader.corrupt("step \(step) of \(count)") }
        var steps: [Aging.Step] = []
        for _ in 0..<count {
            let after = try reader.int64()
            steps.append(Aging.Step(after: after, keep: Int64(try reader.u8())))
        }
        let contact = try reader.string()
        let action = try reader.string()
        let group = try reader.u8() == 1 ? try reader.string() : nil
        guard reader.isAtEnd else { throw reader.corrupt("trailing bytes") }
        return AgingAward(
            contact: contact, action: action, group: group, awardedAt: awardedAt, delta: delta, remaining: remaining,
            aging: Aging(kind: kind, steps: steps), step: step)
    }
}

extension ProjectionTransaction {
    /// Puts an award into the due index under the key of its next step (nothing after its last step).
    public func addAging(_ award: AgingAward, seq: UInt64, index: UInt32) throws {
        guard let key = award.key(seq: seq, index: index) else { return }
        try txn.put(store.aging, AgingCodec.key(key), AgingCodec.encode(award))
        try txn.put(store.agingAwards, IdentityCodec.awardKey(seq: seq, index: index), IdentityCodec.sortable(key.due))
    }

    /// Removes from the due index the waiting awards made by the events at `seqs` (a contact's history, when a
    /// merge replaces its awards with the merged contact's, or an erasure removes them).
    public func removeAging(awardedAt seqs: [UInt64]) throws {
        for seq in seqs {
            var found: [(index: [UInt8], due: [UInt8])] = []
            let prefix = SequenceKey.encode(seq)
            try txn.scan(store.agingAwards, from: prefix) { key, value in
                guard key.starts(with: prefix) else { return false }
                found.append((Array(key), Array(value)))
                return true
            }
            for (key, due) in found {
                _ = try txn.delete(store.agingAwards, key)
                _ = try txn.delete(store.aging, due + key)
            }
        }
    }

    /// Takes the first award of the due index if it is due at or before `now`: removed from the table, returned
    /// with its key.
    public func takeFirstAging(dueBy now: Int64) throws -> (AgingKey, AgingAward)? {
        var found: (AgingKey, AgingAward, [UInt8])?
        try txn.scan(store.aging) { key, value in
            let decoded = try AgingCodec.decodeKey(key)
            if decoded.due <= now { found = (decoded, try AgingCodec.decode(value), Array(key)) }
            return false
        }
        guard let (key, award, raw) = found else { return nil }
        _ = try txn.delete(store.aging, raw)
        _ = try txn.delete(store.agingAwards, IdentityCodec.awardKey(seq: key.seq, index: key.index))
        return (key, award)
    }

    /// Whether an award is due at or before `now`.
    public func hasAging(dueBy now: Int64) throws -> Bool {
        var due = false
        try txn.scan(store.aging) { key, _ in
            due = try AgingCodec.decodeKey(key).due <= now
            return false
        }
        return due
    }

    /// The fold's *now* (D1): the greatest clock `at` folded, nil before the first clock event.
    public func now() throws -> Int64? {
        guard let raw = try txn.get(store.meta, ProjectionStore.clockKey) else { return nil }
        return try raw.withUnsafeBytes { bytes in
            var reader = ByteReader(bytes, table: "meta")
            return try reader.int64()
        }
    }

    public func setNow(_ now: Int64) throws {
        var writer = ByteWriter()
        writer.int64(now)
        try txn.put(store.meta, ProjectionStore.clockKey, writer.bytes)
    }

    /// The clock event whose due awards are being aged, a bounded batch per transaction (D4), if any.
    public func agingPass() throws -> AgingPass? {
        guard let raw = try txn.get(store.meta, ProjectionStore.agingPassKey) else { return nil }
        return try raw.withUnsafeBytes { bytes in
            var reader = ByteReader(bytes, table: "meta")
            let seq = UInt64(bitPattern: try reader.int64())
            let now = try reader.int64()
            let entries = try reader.varint()
            guard entries <= UInt64(UInt32.max) else { throw reader.corrupt("aging pass of \(entries) entries") }
            return AgingPass(seq: seq, now: now, entries: UInt32(entries))
        }
    }

    /// Saves the pass's progress, or removes it when `pass` is nil.
    public func setAgingPass(_ pass: AgingPass?) throws {
        guard let pass else {
            _ = try txn.delete(store.meta, ProjectionStore.agingPassKey)
            return
        }
        var writer = ByteWriter()
        writer.int64(Int64(bitPattern: pass.seq))
        writer.int64(pass.now)
        writer.varint(UInt64(pass.entries))
        try txn.put(store.meta, ProjectionStore.agingPassKey, writer.bytes)
    }
}

/// Where the aging of a clock event's due awards stands (D4): the projector applies them a bounded batch per
/// transaction and resumes here after a crash.
public struct AgingPass: Sendable, Equatable {
    /// The clock event.
    public var seq: UInt64
    /// Its `at`: every award due at or before it is aged.
    public var now: Int64
    /// Audit entries the pass has written so far: the audit index of the next (unique per contact and clock event
    /// however the pass is cut into transactions).
    public var entries: UInt32

    public init(seq: UInt64, now: Int64, entries: UInt32 = 0) {
        self.seq = seq
        self.now = now
        self.entries = entries
    }
}

extension ProjectionTransaction {
    /// How many awards wait in the due index, and when the first is due.
    public func agingSummary() throws -> (count: Int, nextDue: Int64?) {
        var next: Int64?
        try txn.scan(store.aging) { key, _ in
            next = try AgingCodec.decodeKey(key).due
            return false
        }
        return (try txn.count(store.aging), next)
    }
}

extension ProjectionTransaction {
    /// Whether a pass started by the last event folded is still under way (an aging pass, D4): the checkpoint's
    /// event is not fully applied until it ends.
    public func passPending() throws -> Bool {
        try agingPass() != nil
    }

    /// Whether any pass is under way, those that take turns with the fold included (the U2 backfill, the
    /// `trigger_existing` pass): the projections are not yet what a fresh fold to the checkpoint gives, and the
    /// projector has work without new events.
    public func anyPassPending() throws -> Bool {
        try passPending() || backfillPass() != nil || existingTriggersPass() != nil
    }
}

extension ProjectionStore {
    /// Every award waiting to age, in due order, for verification.
    public func allAging() throws -> [(AgingKey, AgingAward)] {
        try environment.read { txn in
            var result: [(AgingKey, AgingAward)] = []
            try txn.scan(aging) { key, value in
                result.append((try AgingCodec.decodeKey(key), try AgingCodec.decode(value)))
                return true
            }
            return result
        }
    }
}
