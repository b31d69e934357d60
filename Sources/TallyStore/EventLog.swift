public import TallyCore

/// The append-only event log: `events` (big-endian seq → encoded event), the idempotency index `ids`
/// (event id → seq) and the index `rules` of the events that change rules versions (seq → type code of each
/// `rules.published` and `rebuild`) and the index `outcomes` of the delivery outcome events (seq → type code, T7),
/// in their own LMDB environment.
///
/// Appends must come from one thread at a time (the group-commit writer); reads may come from any thread.
public final class EventLog: Sendable {
    public let environment: LMDBEnvironment
    let events: LMDBDatabase
    let ids: LMDBDatabase
    let rules: LMDBDatabase
    let outcomes: LMDBDatabase
    /// The log's on-disk format (see Docs/format.md): 2 since delivery outcomes are events (T7).
    public static let format: UInt8 = 2

    public init(directory: String, mapSize: Int) throws {
        environment = try LMDBEnvironment(path: directory, mapSize: mapSize)
        events = try environment.database("events")
        ids = try environment.database("ids")
        rules = try environment.database("rules")
        outcomes = try environment.database("outcomes")
        try StoreFormat.check(environment, try environment.database("meta"), supported: Self.format)
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
        try environment.write { txn in
            var next = try Self.head(txn, events) + 1
            var receipts: [AppendReceipt] = []
            receipts.reserveCapacity(requests.count)
            var record: [UInt8] = []  // one buffer for every record of the batch
            for request in requests {
                var receipt = AppendReceipt()
                for index in request.indices {  // indices, not `for event in`: no copy of each event
                    let seqKey = SequenceKey.encode(next)
                    if let id = request[index].id {
                        let fresh = try txn.put(ids, Array(id.utf8), seqKey, flags: LMDBPutFlags.noOverwrite)
                        if !fresh {
                            let original = try txn.get(ids, Array(id.utf8))
                            receipt.duplicates += 1
                            receipt.duplicatesByType[request[index].type, default: 0] += 1
                            if let seq = original?.withUnsafeBytes({ SequenceKey.decode($0) }) { receipt.include(seq) }
                            continue
                        }
                    }
                    EventCodec.encode(request[index], into: &record)
                    try txn.put(events, seqKey, record, flags: LMDBPutFlags.append)
                    if request[index].type.switchesRules {
                        try txn.put(rules, seqKey, [request[index].type.rawValue])
                    } else if request[index].type.isDeliveryOutcome {
                        try txn.put(outcomes, seqKey, [request[index].type.rawValue])
                    }
                    receipt.accepted += 1
                    receipt.include(next)
                    next += 1
                }
                receipts.append(receipt)
            }
            beforeCommit()
            return receipts
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
