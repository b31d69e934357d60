public import TallyCore

/// The projections folded from the log, in their own LMDB environment: `contacts` (contact id → encoded
/// ``ContactState``), `sessions` (contact and session → the session's ``OpenHit``), `audit` (every
/// ``AuditEntry`` in log order, which is also the change feed, L2), `history` and `trails` (each contact's events
/// and the ends of its chains, see ``Trail``), `outbox` and `outbox_due` (side effects to deliver, see
/// ``OutboxEntry``), `aging` (the awards that will expire or decay, by due time, see ``AgingAward``), `scores` and
/// `members` (the list indexes, ``ContactIndex``), `url_visits` (per contact and URL,
/// the facts every pattern's page-visit state derives from, U2) and `meta` (`checkpoint` → the last
/// applied log sequence number, big-endian; `rules` → the version in force and the number of publications folded;
/// `rebuild` → the sequence number of the rebuild event these projections were built for; `existing` → the
/// progress of a `trigger_existing` pass, T4; `clock` → the fold's now, D1; `aging` → the progress of a clock
/// event's aging pass, D4).
///
/// State and checkpoint are written in one transaction (A5), so after a crash the projector resumes exactly
/// after the last event it applied.
public final class ProjectionStore: Sendable {
    public let environment: LMDBEnvironment
    let contacts: LMDBDatabase
    let sessions: LMDBDatabase
    let audit: LMDBDatabase
    let outbox: LMDBDatabase
    let outboxDue: LMDBDatabase
    let aging: LMDBDatabase
    let scores: LMDBDatabase
    let members: LMDBDatabase
    let urlVisits: LMDBDatabase
    let history: LMDBDatabase
    let trails: LMDBDatabase
    let aliases: LMDBDatabase
    let clocks: LMDBDatabase
    let agingAwards: LMDBDatabase
    let existingDone: LMDBDatabase
    let relays: LMDBDatabase
    let meta: LMDBDatabase
    static let checkpointKey = Array("checkpoint".utf8)
    static let rulesKey = Array("rules".utf8)
    static let rebuildKey = Array("rebuild".utf8)
    static let existingKey = Array("existing".utf8)
    static let clockKey = Array("clock".utf8)
    static let agingPassKey = Array("aging".utf8)
    static let backfillKey = Array("backfill".utf8)
    static let erasingKey = Array("erasing".utf8)
    static let erasingStreamKey = Array("erasing_stream".utf8)

    public init(directory: String, mapSize: Int) throws {
        environment = try LMDBEnvironment(path: directory, mapSize: mapSize, maxDatabases: 32)
        contacts = try environment.database("contacts")
        sessions = try environment.database("sessions")
        audit = try environment.database("audit")
        outbox = try environment.database("outbox")
        outboxDue = try environment.database("outbox_due")
        aging = try environment.database("aging")
        scores = try environment.database("scores")
        members = try environment.database("members")
        urlVisits = try environment.database("url_visits")
        history = try environment.database("history")
        trails = try environment.database("trails")
        aliases = try environment.database("aliases")
        clocks = try environment.database("clocks")
        agingAwards = try environment.database("aging_awards")
        existingDone = try environment.database("existing_done")
        relays = try environment.database("relays")
        meta = try environment.database("meta")
        try StoreFormat.check(environment, meta, supported: Self.format) { found in
            // Older projections are derived data this release does not migrate; newer ones need their release.
            found < Self.format
                ? "projections are derived from the log: stop Tally, move this directory (and CURRENT beside it) "
                    + "aside and start again to fold the log afresh — see \"Upgrade\" in Docs/operations.md"
                : nil
        }
    }

    /// The projections' on-disk format (see Docs/format.md): 9 since `history` and `audit` are in log order, each
    /// contact's records a chain ended by its `trails` record, and the audit is the change feed (`changes` is gone;
    /// issue 16); 8 since contacts have a history, aliases and an
    /// anonymous flag, and the audit marks an entry's original contact (`history`, `aliases`, `clocks`,
    /// `aging_awards`; I1–I5, I8); 7 since the URL facts (`url_visits`, U2); 6 since lists and the change feed have
    /// their indexes (`scores`, `members`, `changes`, L1 L2); 5 since awards age (the `aging` table and the clock in
    /// `meta`, D1–D4); 4 since a contact's record keeps its fields (F1) and
    /// its fit scores' awards (F2); 3 since a contact's record keeps its capped actions'
    /// awards (C1, C2) and its `rearm` triggers' firings (T9); 2 since the audit key's index is a u32 (format 1 had
    /// a u8 that wrapped past 255 awards of one event), ids sort as bytes, and the outbox is folded from the log
    /// (T7).
    public static let format: UInt8 = 9

    /// Every table with its name, in one order: what `verify` compares and the property test reads.
    var namedTables: [(name: String, table: LMDBDatabase)] {
        [
            ("contacts", contacts), ("sessions", sessions), ("audit", audit), ("outbox", outbox),
            ("outbox_due", outboxDue), ("aging", aging), ("scores", scores), ("members", members),
            ("url_visits", urlVisits), ("history", history), ("trails", trails), ("aliases", aliases),
            ("clocks", clocks), ("aging_awards", agingAwards), ("existing_done", existingDone), ("relays", relays),
            ("meta", meta),
        ]
    }

    /// The sequence number of the last event folded into the projections.
    public func checkpoint() throws -> UInt64 {
        try environment.read { txn in try ProjectionTransaction(txn: txn, store: self).checkpoint() }
    }

    /// A contact's state, or nil when the contact has never been seen.
    public func contact(_ id: String) throws -> ContactState? {
        try environment.read { txn in try ProjectionTransaction(txn: txn, store: self).contact(id) }
    }

    /// Every open session hit, for verification.
    public func allOpenHits() throws -> [SessionKey: OpenHit] {
        try environment.read { txn in
            var result: [SessionKey: OpenHit] = [:]
            try txn.scan(sessions) { key, value in
                var reader = ByteReader(key, table: "sessions")
                let contact = try reader.string()
                let session = String(decoding: UnsafeRawBufferPointer(rebasing: key[reader.index...]), as: UTF8.self)
                result[SessionKey(contact: contact, session: session)] = try OpenHitCodec.decode(value)
                return true
            }
            return result
        }
    }

    /// Every contact with its state, in id order.
    public func allContacts() throws -> [(String, ContactState)] {
        try environment.read { txn in
            var result: [(String, ContactState)] = []
            try txn.scan(contacts) { key, value in
                result.append((String(decoding: key, as: UTF8.self), try ContactCodec.decode(value)))
                return true
            }
            return result
        }
    }

    /// Runs `body` in one read transaction over the projections.
    public func read<T>(_ body: (ProjectionTransaction) throws -> T) throws -> T {
        try environment.read { txn in try body(ProjectionTransaction(txn: txn, store: self)) }
    }

    /// Runs `body` in one write transaction over the projections.
    public func update<T>(_ body: (ProjectionTransaction) throws -> T) throws -> T {
        try environment.write { txn in try body(ProjectionTransaction(txn: txn, store: self)) }
    }
}

/// Reads and writes the projection tables inside one transaction.
public struct ProjectionTransaction {
    let txn: LMDBTransaction
    let store: ProjectionStore

    public func checkpoint() throws -> UInt64 {
        try sequenceNumber(ProjectionStore.checkpointKey)
    }

    /// A sequence number stored in `meta`, 0 when absent. A malformed one is a corrupt record: read as 0, a
    /// checkpoint would fold the whole log again onto the folded state.
    func sequenceNumber(_ key: [UInt8]) throws -> UInt64 {
        guard let raw = try txn.get(store.meta, key) else { return 0 }
        guard let seq = raw.withUnsafeBytes({ SequenceKey.decode($0) }) else {
            throw CorruptRecordError(
                table: "meta", message: "\(String(decoding: key, as: UTF8.self)) of \(raw.count) bytes, not 8")
        }
        return seq
    }

    public func setCheckpoint(_ seq: UInt64) throws {
        try txn.put(store.meta, ProjectionStore.checkpointKey, SequenceKey.encode(seq))
    }

    public func contact(_ id: String) throws -> ContactState? {
        try Array(id.utf8).withUnsafeBytes { key in
            try txn.get(store.contacts, key).map { try ContactCodec.decode($0) }
        }
    }

    public func setContact(_ id: String, _ state: ContactState) throws {
        try txn.put(store.contacts, Array(id.utf8), ContactCodec.encode(state))
    }
}

extension ProjectionTransaction {
    /// The open hit of a contact's session.
    public func openHit(_ key: SessionKey) throws -> OpenHit? {
        try OpenHitCodec.key(key).withUnsafeBytes { raw in
            try txn.get(store.sessions, raw).map { try OpenHitCodec.decode($0) }
        }
    }

    public func setOpenHit(_ key: SessionKey, _ hit: OpenHit) throws {
        try txn.put(store.sessions, OpenHitCodec.key(key), OpenHitCodec.encode(hit))
    }
}

/// Where a `trigger_existing` pass (T4) stands: it fires the triggers for every stored contact, a bounded batch
/// of contacts per transaction, and resumes after `after` following a crash.
public struct ExistingTriggersPass: Sendable, Equatable {
    /// The `rules.published` event that started it.
    public var seq: UInt64
    /// Its time, at which the triggers are judged.
    public var at: Int64
    /// The ids of the triggers to fire.
    public var triggers: [String]
    /// The last contact done, nil before the first batch.
    public var after: String?

    public init(seq: UInt64, at: Int64, triggers: [String], after: String? = nil) {
        self.seq = seq
        self.at = at
        self.triggers = triggers
        self.after = after
    }

    /// Whether the pass has not reached `contact` yet: it comes after ``after`` in the `contacts` table's order
    /// (bytes).
    public func pending(_ contact: String) -> Bool {
        guard let after else { return true }
        return ByteString(after) < ByteString(contact)
    }
}

extension ProjectionTransaction {
    /// The rules version in force and the number of publications folded so far (A3).
    public func rulesCursor() throws -> (version: Int64, published: Int64) {
        guard let raw = try txn.get(store.meta, ProjectionStore.rulesKey) else { return (0, 0) }
        return try raw.withUnsafeBytes { bytes in
            var reader = ByteReader(bytes, table: "meta")
            let version = try reader.int64()
            return (version: version, published: try reader.int64())
        }
    }

    public func setRulesCursor(version: Int64, published: Int64) throws {
        var writer = ByteWriter()
        writer.int64(version)
        writer.int64(published)
        try txn.put(store.meta, ProjectionStore.rulesKey, writer.bytes)
    }

    /// The sequence number of the `rebuild` event these projections were built for; 0 when never rebuilt.
    public func rebuildSeq() throws -> UInt64 {
        try sequenceNumber(ProjectionStore.rebuildKey)
    }

    public func setRebuildSeq(_ seq: UInt64) throws {
        try txn.put(store.meta, ProjectionStore.rebuildKey, SequenceKey.encode(seq))
    }

    /// The `trigger_existing` pass in progress, if any.
    public func existingTriggersPass() throws -> ExistingTriggersPass? {
        guard let raw = try txn.get(store.meta, ProjectionStore.existingKey) else { return nil }
        return try raw.withUnsafeBytes { bytes in
            var reader = ByteReader(bytes, table: "meta")
            let seq = UInt64(bitPattern: try reader.int64())
            let at = try reader.int64()
            var triggers: [String] = []
            for _ in 0..<(try reader.varint()) { triggers.append(try reader.string()) }
            let after = try reader.u8() == 1 ? try reader.string() : nil
            return ExistingTriggersPass(seq: seq, at: at, triggers: triggers, after: after)
        }
    }

    /// Saves the pass's progress, or removes it (and its record of the contacts done early) when `pass` is nil.
    public func setExistingTriggersPass(_ pass: ExistingTriggersPass?) throws {
        guard let pass else {
            _ = try txn.delete(store.meta, ProjectionStore.existingKey)
            try txn.clear(store.existingDone)
            return
        }
        var writer = ByteWriter()
        writer.int64(Int64(bitPattern: pass.seq))
        writer.int64(pass.at)
        writer.varint(UInt64(pass.triggers.count))
        for trigger in pass.triggers { writer.string(trigger) }
        writer.u8(pass.after == nil ? 0 : 1)
        if let after = pass.after { writer.string(after) }
        try txn.put(store.meta, ProjectionStore.existingKey, writer.bytes)
    }

    /// Whether the `trigger_existing` pass has been applied to `contact` already, ahead of its position: an event,
    /// a merge or an aging step touched the contact first.
    public func isDoneByExistingPass(_ contact: String) throws -> Bool {
        try txn.get(store.existingDone, Array(contact.utf8)) != nil
    }

    public func markDoneByExistingPass(_ contact: String) throws {
        try txn.put(store.existingDone, Array(contact.utf8), [])
    }

    /// Up to `limit` contacts in id order after `after` (from the first when nil).
    public func contacts(after: String?, limit: Int) throws -> [(String, ContactState)] {
        var result: [(String, ContactState)] = []
        let start = after.map { Array($0.utf8) }
        try txn.scan(store.contacts, from: start) { key, value in
            // The key itself is skipped by its bytes: `String ==` would also skip a canonically equivalent next id.
            if let start, key.elementsEqual(start) { return true }
            let id = String(decoding: key, as: UTF8.self)
            result.append((id, try ContactCodec.decode(value)))
            return result.count < limit
        }
        return result
    }
}
