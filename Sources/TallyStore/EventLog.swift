import Foundation
import Synchronization
public import TallyCore

/// The append-only event log: `events` (big-endian seq → encoded event), the idempotency index `ids`
/// (event id → seq) and the index `rules` of the events that change rules versions (seq → type code of each
/// `rules.published` and `rebuild`) and the index `outcomes` of the delivery outcome events (seq → type code, T7),
/// in their own LMDB environment.
///
/// Appends must come from one thread at a time (the group-commit writer); reads may come from any thread.
///
/// An erasure (I8) replaces the environment with a compacted copy (``compact()``): the environment is read through
/// ``environment`` for each operation, and an operation under way keeps the one it began with open. The tables
/// are opened in one order, so their handles are the same in every copy.
public final class EventLog: Sendable {
    private let current: Mutex<LMDBEnvironment>
    private let directory: String
    private let mapSize: Int
    let events: LMDBDatabase
    let ids: LMDBDatabase
    let rules: LMDBDatabase
    let outcomes: LMDBDatabase
    let meta: LMDBDatabase
    /// The log's on-disk format (see Docs/format.md): 2 since delivery outcomes are events (T7).
    public static let format: UInt8 = 2

    /// The environment the log is in now.
    public var environment: LMDBEnvironment { current.withLock { $0 } }

    public init(directory: String, mapSize: Int) throws {
        try Self.finishCompaction(directory)
        self.directory = directory
        self.mapSize = mapSize
        let (environment, tables) = try Self.open(directory, mapSize: mapSize)
        current = Mutex(environment)
        (events, ids, rules, outcomes, meta) = tables
    }

    private static func open(
        _ directory: String, mapSize: Int
    ) throws -> (
        LMDBEnvironment, (LMDBDatabase, LMDBDatabase, LMDBDatabase, LMDBDatabase, LMDBDatabase)
    ) {
        let environment = try LMDBEnvironment(path: directory, mapSize: mapSize)
        let tables = (
            try environment.database("events"), try environment.database("ids"), try environment.database("rules"),
            try environment.database("outcomes"), try environment.database("meta")
        )
        try StoreFormat.check(environment, tables.4, supported: Self.format)
        return (environment, tables)
    }

    /// I8: replaces the log's file with a copy that holds only the live records, written afresh
    /// (``LMDBEnvironment/rewrite(to:batch:)``) — no free page, no byte of a deleted record. Call it from the one
    /// writing thread (nothing may append meanwhile). The copy is made beside the log (`DIR.compact`), the log
    /// directory moved to `DIR.old`, the copy moved in, and the old files removed; a crash in between is finished by
    /// the next ``init(directory:mapSize:)``.
    public func compact() throws {
        let fresh = directory + ".compact"
        let old = directory + ".old"
        try? FileManager.default.removeItem(atPath: fresh)
        try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: false)
        try environment.rewrite(to: fresh)
        try FileManager.default.moveItem(atPath: directory, toPath: old)
        try FileManager.default.moveItem(atPath: fresh, toPath: directory)
        let (environment, tables) = try Self.open(directory, mapSize: mapSize)
        guard tables == (events, ids, rules, outcomes, meta) else {
            throw CorruptRecordError(table: "events", message: "the compacted log opened its tables in another order")
        }
        current.withLock { $0 = environment }
        try FileManager.default.removeItem(atPath: old)
    }

    /// Finishes a compaction a crash interrupted: the copy is moved in if the log is not back in place, and the
    /// old directory removed.
    static func finishCompaction(_ directory: String) throws {
        let manager = FileManager.default
        if !manager.fileExists(atPath: directory + "/data.mdb"),
            manager.fileExists(atPath: directory + ".compact/data.mdb")
        {
            try? manager.removeItem(atPath: directory)
            try manager.moveItem(atPath: directory + ".compact", toPath: directory)
        }
        if !manager.fileExists(atPath: directory + "/data.mdb"), manager.fileExists(atPath: directory + ".old/data.mdb")
        {
            try? manager.removeItem(atPath: directory)
            try manager.moveItem(atPath: directory + ".old", toPath: directory)
        }
        try? manager.removeItem(atPath: directory + ".old")
        try? manager.removeItem(atPath: directory + ".compact")
    }

    /// The sequence number of the last event, 0 for an empty log.
    public func head() throws -> UInt64 {
        try environment.read { txn in try Self.head(txn, events) }
    }

    static func head(_ txn: LMDBTransaction, _ events: LMDBDatabase) throws -> UInt64 {
        guard let key = try txn.lastKey(events) else { return 0 }
        return key.withUnsafeBytes { SequenceKey.decode($0) } ?? 0
    }

    /// Appends several requests' events in one durable transaction (group commit), skipping events whose `id`
    /// is already known (S6). Returns one receipt per request, in order. `beforeCommit` runs inside the
    /// transaction after the last put (a fault-injection point for the crash tests).
    public func append(_ requests: [[Event]], beforeCommit: () -> Void = {}) throws -> [AppendReceipt] {
        try append(requests.map { AppendRequest.events($0) }, beforeCommit: beforeCommit)
    }

    /// ``append(_:beforeCommit:)-([[Event]],_)`` of requests given as events or as packed records.
    public func append(_ requests: [AppendRequest], beforeCommit: () -> Void = {}) throws -> [AppendReceipt] {
        try environment.write { txn in
            let receipts = try append(requests, in: txn)
            beforeCommit()
            return receipts
        }
    }

    /// A cluster partition's copy (issue 19): appends what was read from the partition's stream, each event under
    /// its stream sequence (`positions`, ascending, after the head), and the stream sequence of the last message
    /// read, in one durable transaction, so that after a crash the copy resumes after exactly what it holds —
    /// nothing skipped, nothing appended twice. Positions are the stream's, not dense: every copy of a partition
    /// numbers its events alike even after messages left the stream (an erasure, I8), and they order events of
    /// different partitions (the change feed).
    public func append(
        copied events: [Event], at positions: [UInt64], streamPosition: UInt64
    ) throws
        -> AppendReceipt
    {
        precondition(events.count == positions.count, "one stream position per copied event")
        return try environment.write { txn in
            var receipt = AppendReceipt()
            var record: [UInt8] = []
            for index in events.indices {
                EventCodec.encode(events[index], into: &record)
                try record.withUnsafeBytes { record in
                    _ = try put(
                        record: record, idBytes: events[index].id.map { Array($0.utf8) }, type: events[index].type,
                        at: positions[index], into: &receipt, txn)
                }
            }
            try txn.put(meta, Self.streamPositionKey, SequenceKey.encode(streamPosition))
            try txn.put(meta, Self.positionsKey, Self.streamPositions)
            return receipt
        }
    }

    /// Whether the log numbers its events by stream sequence (a cluster partition's copy since issue 19's erasure)
    /// or holds none: a copy numbered densely, as the first copies were, must be copied again.
    public func numberedByStream() throws -> Bool {
        try environment.read { txn in
            try txn.get(meta, Self.positionsKey).map { Array($0) == Self.streamPositions }
                ?? (try txn.count(events) == 0)
        }
    }

    static let positionsKey = Array("positions".utf8)
    static let streamPositions = Array("stream".utf8)

    /// The stream sequence of the last message a partition's copy appended (0: none).
    public func streamPosition() throws -> UInt64 {
        try environment.read { txn in
            try txn.get(meta, Self.streamPositionKey).flatMap { value in value.withUnsafeBytes(SequenceKey.decode) }
                ?? 0
        }
    }

    static let streamPositionKey = Array("stream_position".utf8)

    private func append(_ requests: [AppendRequest], in txn: LMDBTransaction) throws -> [AppendReceipt] {
        var next = try Self.head(txn, events) + 1
        var receipts: [AppendReceipt] = []
        receipts.reserveCapacity(requests.count)
        var record: [UInt8] = []  // one buffer for every record of the batch
        /// Puts one record under `next` unless its id is known.
        func put(
            record: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer?, type: EventType,
            into receipt: inout AppendReceipt
        ) throws {
            if try self.put(record: record, id: id, type: type, at: next, into: &receipt, txn) { next += 1 }
        }
        for request in requests {
            var receipt = AppendReceipt()
            switch request {
            case .events(let request):
                for index in request.indices {  // indices, not `for event in`: no copy of each event
                    EventCodec.encode(request[index], into: &record)
                    let type = request[index].type
                    try record.withUnsafeBytes { record in
                        guard let id = request[index].id else {
                            return try put(record: record, id: nil, type: type, into: &receipt)
                        }
                        try Array(id.utf8).withUnsafeBytes { id in
                            try put(record: record, id: id, type: type, into: &receipt)
                        }
                    }
                }
            case .packed(let packed):
                try packed.bytes.withUnsafeBytes { bytes in
                    for entry in packed.entries {
                        try put(
                            record: UnsafeRawBufferPointer(rebasing: bytes[entry.record]),
                            id: entry.id.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }, type: entry.type,
                            into: &receipt)
                    }
                }
            }
            receipts.append(receipt)
        }
        return receipts
    }

    /// Puts one record under `seq` unless its id is known (then counts it a duplicate); whether it was put.
    private func put(
        record: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer?, type: EventType, at seq: UInt64,
        into receipt: inout AppendReceipt, _ txn: LMDBTransaction
    ) throws -> Bool {
        var key = seq.bigEndian
        return try withUnsafeBytes(of: &key) { seqKey in
            if let id, !(try txn.put(ids, id, seqKey, flags: LMDBPutFlags.noOverwrite)) {
                receipt.duplicates += 1
                receipt.duplicatesByType[type, default: 0] += 1
                if let known = try txn.get(ids, id).flatMap(SequenceKey.decode) { receipt.include(known) }
                return false
            }
            try txn.put(events, seqKey, record, flags: LMDBPutFlags.append)
            if type.switchesRules {
                try txn.put(rules, Array(seqKey), [type.rawValue])
            } else if type.isDeliveryOutcome {
                try txn.put(outcomes, Array(seqKey), [type.rawValue])
            }
            receipt.accepted += 1
            receipt.include(seq)
            return true
        }
    }

    /// ``put(record:id:type:at:into:_:)`` with the id as bytes.
    private func put(
        record: UnsafeRawBufferPointer, idBytes id: [UInt8]?, type: EventType, at seq: UInt64,
        into receipt: inout AppendReceipt, _ txn: LMDBTransaction
    ) throws -> Bool {
        guard let id else { return try put(record: record, id: nil, type: type, at: seq, into: &receipt, txn) }
        return try id.withUnsafeBytes { id in try put(record: record, id: id, type: type, at: seq, into: &receipt, txn)
        }
    }

    /// Appends the events `produce` emits in one durable transaction, without holding them in memory (an
    /// import). `produce` may run more than once (when the map grows, the transaction starts over): it must emit
    /// the same events each time. Events carry no idempotency key.
    public func appendStream(_ produce: (_ emit: (Event) throws -> Void) throws -> Void) throws -> AppendReceipt {
        try environment.write { txn in
            var next = try Self.head(txn, events) + 1
            var receipt = AppendReceipt()
            try produce { event in
                try txn.put(events, SequenceKey.encode(next), EventCodec.encode(event), flags: LMDBPutFlags.append)
                receipt.accepted += 1
                receipt.include(next)
                next += 1
            }
            return receipt
        }
    }

    /// Up to `limit` events with sequence numbers from `seq` on.
    public func read(from seq: UInt64, limit: Int) throws -> [LoggedEvent] {
        var result: [LoggedEvent] = []
        result.reserveCapacity(min(limit, 10_000))
        try environment.read { txn in
            try txn.scan(events, from: SequenceKey.encode(seq)) { key, value in
                result.append(try Self.logged(key, value))  // decoded into the array, not copied there
                return result.count < limit
            }
        }
        return result
    }

    /// Visits events in log order from `seq` on, in one read transaction, until `body` returns false.
    public func forEach(from seq: UInt64 = 1, _ body: (LoggedEvent) throws -> Bool) throws {
        try environment.read { txn in
            try txn.scan(events, from: SequenceKey.encode(seq)) { key, value in try body(Self.logged(key, value)) }
        }
    }

    private static func logged(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> LoggedEvent {
        guard let seq = SequenceKey.decode(key) else {
            throw CorruptRecordError(table: "events", message: "key of \(key.count) bytes")
        }
        return LoggedEvent(seq: seq, event: try EventCodec.decode(value))
    }

    /// The sequence number of the event with idempotency key `id`, if any.
    public func seq(forID id: String) throws -> UInt64? {
        try environment.read { txn in
            try txn.get(ids, Array(id.utf8))?.withUnsafeBytes { SequenceKey.decode($0) }
        }
    }

    /// The number of events in the log.
    public func count() throws -> Int {
        try environment.read { txn in try txn.count(events) }
    }

    /// The event at `seq`, if there is one.
    public func event(at seq: UInt64) throws -> Event? {
        try environment.read { txn in
            try SequenceKey.encode(seq).withUnsafeBytes { key in
                try txn.get(events, key).map { try EventCodec.decode($0) }
            }
        }
    }

    /// I8: removes the events at `seqs`, and those after `tail` that `belongs` picks (appended since the projections
    /// last looked), with their idempotency and index entries, and appends `record` (the `contact.erased` event)
    /// after the head first, so the head never moves back. A `record` whose id is already in the log (an erasure
    /// run again after a crash) is not appended twice. Returns the removed events' sequence numbers and the
    /// record's.
    public func erase(
        _ seqs: [UInt64], tail: UInt64, belongs: (Event) -> Bool, record: Event
    ) throws -> (removed: [UInt64], record: UInt64) {
        try environment.write { txn in
            let head = try Self.head(txn, events)
            var doomed = Set(seqs)
            try txn.scan(events, from: SequenceKey.encode(tail + 1)) { key, value in
                let logged = try Self.logged(key, value)
                if belongs(logged.event) { doomed.insert(logged.seq) }
                return true
            }
            var recordSeq = head + 1
            if let id = record.id,
                let known = try txn.get(ids, Array(id.utf8))?.withUnsafeBytes({ SequenceKey.decode($0) })
            {
                recordSeq = known
            } else {
                if let id = record.id { try txn.put(ids, Array(id.utf8), SequenceKey.encode(recordSeq)) }
                try txn.put(
                    events, SequenceKey.encode(recordSeq), EventCodec.encode(record), flags: LMDBPutFlags.append)
            }
            try delete(doomed.sorted(), txn)
            return (doomed.sorted(), recordSeq)
        }
    }

    /// I8 in a cluster partition's copy: removes every event `belongs` picks, with its idempotency and index
    /// entries, in one transaction, and returns their positions. No record is appended: the copy holds what the
    /// stream holds, and the erasure's record comes through the stream.
    public func remove(where belongs: (Event) -> Bool) throws -> [UInt64] {
        try environment.write { txn in
            var doomed: [UInt64] = []
            try txn.scan(events) { key, value in
                let logged = try Self.logged(key, value)
                if belongs(logged.event) { doomed.append(logged.seq) }
                return true
            }
            try delete(doomed, txn)
            return doomed
        }
    }

    /// Deletes the events at `seqs` (those still there) with their idempotency and index entries.
    private func delete(_ seqs: [UInt64], _ txn: LMDBTransaction) throws {
        for seq in seqs {
            let key = SequenceKey.encode(seq)
            guard let raw = try txn.get(events, key) else { continue }
            let event = try EventCodec.decode(raw)
            if let id = event.id, try txn.get(ids, Array(id.utf8)) == key { try txn.delete(ids, Array(id.utf8)) }
            try txn.delete(events, key)
            try txn.delete(rules, key)
            try txn.delete(outcomes, key)
        }
    }

    /// The events at `seqs` (those still in the log), in the order given, read in one transaction: a contact's
    /// history for a merge (I3).
    public func events(at seqs: [UInt64]) throws -> [LoggedEvent] {
        try environment.read { txn in
            var result: [LoggedEvent] = []
            result.reserveCapacity(seqs.count)
            for seq in seqs {
                try SequenceKey.encode(seq).withUnsafeBytes { key in
                    if let raw = try txn.get(events, key) {
                        result.append(LoggedEvent(seq: seq, event: try EventCodec.decode(raw)))
                    }
                }
            }
            return result
        }
    }

    /// The sequence number of the last delivery outcome event (T7), 0 when there is none: a delivery must not
    /// trust projections that have not folded this far.
    public func lastDeliveryOutcome() throws -> UInt64 {
        try environment.read { txn in
            try txn.lastKey(outcomes).flatMap { key in key.withUnsafeBytes { SequenceKey.decode($0) } } ?? 0
        }
    }

    /// Every `rules.published` and `rebuild` event, in log order (A3, A4).
    public func rulesEvents() throws -> [LoggedEvent] {
        try environment.read { txn in
            var result: [LoggedEvent] = []
            try txn.scan(rules) { key, _ in
                guard let seq = SequenceKey.decode(key), let raw = try txn.get(events, key) else {
                    throw CorruptRecordError(table: "rules", message: "entry without its event")
                }
                result.append(LoggedEvent(seq: seq, event: try EventCodec.decode(raw)))
                return true
            }
            return result
        }
    }
}

/// One request's events for ``EventLog/append(_:beforeCommit:)-([AppendRequest],_)``: as events, or as the
/// records the ingest decoder packed from the request's bytes.
public enum AppendRequest: Sendable {
    case events([Event])
    case packed(PackedEvents)

    /// How many events the request holds.
    public var count: Int {
        switch self {
        case .events(let events): events.count
        case .packed(let packed): packed.count
        }
    }
}
