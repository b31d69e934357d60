import Foundation
public import TallyCore

/// One side effect waiting for delivery, delivered, or parked as failed (T6, T7).
///
/// A projection like the others: the fold adds an entry when a trigger fires it and applies the delivery
/// outcome events of the log to it (``DeliveryStatus``), so the log alone knows what was sent. Stored as JSON in
/// the `outbox` table of the projections (read rarely, never on the ingest path), keyed by ``key``; pending
/// entries are also indexed by due time in `outbox_due`.
public struct OutboxEntry: Sendable, Equatable, Codable {
    /// Where an entry is in its life.
    public typealias State = DeliveryState

    /// What to deliver.
    public enum Kind: Sendable, Equatable, Codable {
        case integrationPush(integration: String)
        case emailSend(email: String)
        case emailSendToUser(email: String, toOwner: Bool, to: [String])
    }

    /// `<contact>/<trigger>/<event id>`, also the delivery's idempotency key.
    public var key: String
    public var contact: String
    public var trigger: String
    public var event: String
    /// Nil for an orphan: an entry made by a delivery outcome in the log for a key that the fold (under the rules
    /// in force) never fired, kept so that the key is never sent again (T7). An orphan is never delivered.
    public var kind: Kind?
    public var state: State
    /// Delivery attempts made so far.
    public var attempts: Int
    /// Wall-clock epoch milliseconds of the next attempt (pending entries).
    public var dueAt: Int64
    public var lastError: String?
    /// The log sequence number of the event that fired it.
    public var firedSeq: UInt64
    /// Wall-clock epoch milliseconds of the successful delivery.
    public var deliveredAt: Int64?

    public init?(_ effect: SideEffect, firedSeq: UInt64) {
        let kind: Kind
        switch effect.kind {
        case .integrationPush(let integration): kind = .integrationPush(integration: integration)
        case .emailSend(let email): kind = .emailSend(email: email)
        case .emailSendToUser(let email, let toOwner, let to):
            kind = .emailSendToUser(email: email, toOwner: toOwner, to: to)
        case .tags, .segments, .campaigns: return nil
        }
        self.key = effect.key
        self.contact = effect.contact
        self.trigger = effect.trigger
        self.event = effect.event
        self.kind = kind
        self.state = .pending
        self.attempts = 0
        self.dueAt = 0
        self.firedSeq = firedSeq
    }

    /// Whether the entry waits for delivery (and is in `outbox_due`): pending, and not an orphan.
    var isDue: Bool { state == .pending && kind != nil }

    /// The entry after the delivery outcome `event` (T7).
    public func applying(_ event: Event) -> OutboxEntry {
        var status = DeliveryStatus(
            state: state, attempts: attempts, dueAt: dueAt, lastError: lastError, deliveredAt: deliveredAt)
        status.apply(event)
        var entry = self
        entry.state = status.state
        entry.attempts = status.attempts
        entry.dueAt = status.dueAt
        entry.lastError = status.lastError
        entry.deliveredAt = status.deliveredAt
        return entry
    }

    /// The orphan entry an outcome for `key` of `contact` makes when the fold never fired the key.
    init(orphan key: String, contact: String) {
        self.key = key
        self.contact = contact
        // `<contact>/<trigger>/<event id>`: trigger and event ids hold no "/".
        let rest = key.hasPrefix(contact + "/") ? key.dropFirst(contact.count + 1) : ""
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        self.trigger = parts.count == 2 ? String(parts[0]) : ""
        self.event = parts.count == 2 ? String(parts[1]) : ""
        self.kind = nil
        self.state = .pending
        self.attempts = 0
        self.dueAt = 0
        self.firedSeq = 0
    }

    /// A short name of the kind, for listings and metrics.
    public var kindName: String {
        switch kind {
        case nil: "unknown"
        case .integrationPush: "integration.push"
        case .emailSend: "email.send"
        case .emailSendToUser: "email.send_to_user"
        }
    }
}

enum OutboxCodec {
    static func encode(_ entry: OutboxEntry) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(entry))
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> OutboxEntry {
        do {
            return try JSONDecoder().decode(OutboxEntry.self, from: Data(bytes))
        } catch {
            throw CorruptRecordError(table: "outbox", message: "\(error)")
        }
    }

    /// `outbox_due` key: due time (u64 big-endian, offset so that negative times sort first) then the entry key.
    static func dueKey(_ entry: OutboxEntry) -> [UInt8] {
        SequenceKey.encode(UInt64(bitPattern: entry.dueAt) ^ (1 << 63)) + Array(entry.key.utf8)
    }
}

extension ProjectionTransaction {
    /// Adds a new entry; returns false (changing nothing) when the key is already in the outbox, so that a
    /// replay or rebuild never queues an effect twice (T7). An orphan under the key (outcomes the fold met before
    /// it fired the key) gives way unless it was delivered: a delivered effect is never sent again.
    @discardableResult
    public func addOutboxEntry(_ entry: OutboxEntry) throws -> Bool {
        guard
            try txn.put(store.outbox, Array(entry.key.utf8), OutboxCodec.encode(entry), flags: LMDBPutFlags.noOverwrite)
        else {
            guard let existing = try outboxEntry(entry.key), existing.kind == nil, existing.state != .delivered else {
                return false
            }
            try updateOutboxEntry(entry)
            return true
        }
        if entry.isDue { try txn.put(store.outboxDue, OutboxCodec.dueKey(entry), []) }
        return true
    }

    public func outboxEntry(_ key: String) throws -> OutboxEntry? {
        try Array(key.utf8).withUnsafeBytes { raw in try txn.get(store.outbox, raw).map { try OutboxCodec.decode($0) } }
    }

    /// Folds a delivery outcome event (T7) into the entry its `item` names. An outcome for a key this fold
    /// never fired (a rebuild under rules that do not fire it) changes nothing.
    public func applyDeliveryOutcome(_ event: Event) throws {
        guard let key = event.item else { return }
        let entry = try outboxEntry(key) ?? OutboxEntry(orphan: key, contact: event.contact)
        try updateOutboxEntry(entry.applying(event))
    }

    /// Replaces an entry, keeping the due index in step.
    func updateOutboxEntry(_ entry: OutboxEntry) throws {
        if let old = try outboxEntry(entry.key), old.isDue {
            try txn.delete(store.outboxDue, OutboxCodec.dueKey(old))
        }
        try txn.put(store.outbox, Array(entry.key.utf8), OutboxCodec.encode(entry))
        if entry.isDue { try txn.put(store.outboxDue, OutboxCodec.dueKey(entry), []) }
    }

    /// Keys of pending entries due at `now` or earlier, soonest first.
    public func dueOutboxKeys(now: Int64, limit: Int) throws -> [String] {
        var keys: [String] = []
        guard limit > 0 else { return keys }
        try forEachDueOutboxKey(now: now) { key in
            keys.append(key)
            return keys.count < limit
        }
        return keys
    }

    /// Visits the keys of pending entries due at `now` or earlier, soonest first, until `body` returns false.
    public func forEachDueOutboxKey(now: Int64, _ body: (String) throws -> Bool) throws {
        let bound = SequenceKey.encode(UInt64(bitPattern: now) ^ (1 << 63))
        try txn.scan(store.outboxDue) { key, _ in
            guard key.count > 8, key.prefix(8).lexicographicallyPrecedes(bound) || key.prefix(8).elementsEqual(bound)
            else { return false }
            return try body(String(decoding: key.dropFirst(8), as: UTF8.self))
        }
    }

    /// The due time of the pending entry due soonest, if any.
    public func nextDueAt() throws -> Int64? {
        var due: Int64?
        try txn.scan(store.outboxDue) { key, _ in
            if key.count >= 8, let raw = SequenceKey.decode(UnsafeRawBufferPointer(rebasing: key.prefix(8))) {
                due = Int64(bitPattern: raw ^ (1 << 63))
            }
            return false
        }
        return due
    }

    /// The due time of the pending entry due soonest after `now`, if any: when the delivery has to look again.
    public func nextDueAt(after now: Int64) throws -> Int64? {
        var due: Int64?
        let from = SequenceKey.encode(UInt64(bitPattern: now &+ 1) ^ (1 << 63))
        try txn.scan(store.outboxDue, from: from) { key, _ in
            if key.count >= 8, let raw = SequenceKey.decode(UnsafeRawBufferPointer(rebasing: key.prefix(8))) {
                due = Int64(bitPattern: raw ^ (1 << 63))
            }
            return false
        }
        return due
    }

    /// The number of pending entries.
    public func pendingOutboxCount() throws -> Int { try txn.count(store.outboxDue) }

    /// Entries in key order, optionally only those in `state`.
    public func outboxEntries(state: OutboxEntry.State?, limit: Int) throws -> [OutboxEntry] {
        var entries: [OutboxEntry] = []
        try txn.scan(store.outbox) { _, value in
            let entry = try OutboxCodec.decode(value)
            if state == nil || entry.state == state { entries.append(entry) }
            return entries.count < limit
        }
        return entries
    }
}
