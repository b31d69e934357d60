public import TallyCore

/// The projections folded from the log, in their own LMDB environment: `contacts` (contact id → encoded
/// ``ContactState``), `sessions` (contact and session → the session's ``OpenHit``), `outbox` and `outbox_due`
/// (side effects to deliver, see ``OutboxEntry``) and `meta` (`checkpoint` → the last applied log sequence
/// number, big-endian).
///
/// State and checkpoint are written in one transaction (A5), so after a crash the projector resumes exactly
/// after the last event it applied.
public final class ProjectionStore: Sendable {
    public let environment: LMDBEnvironment
    let contacts: LMDBDatabase
    let sessions: LMDBDatabase
    let outbox: LMDBDatabase
    let outboxDue: LMDBDatabase
    let meta: LMDBDatabase
    static let checkpointKey = Array("checkpoint".utf8)

    public init(directory: String, mapSize: Int) throws {
        environment = try LMDBEnvironment(path: directory, mapSize: mapSize)
        contacts = try environment.database("contacts")
        sessions = try environment.database("sessions")
        outbox = try environment.database("outbox")
        outboxDue = try environment.database("outbox_due")
        meta = try environment.database("meta")
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
        guard let raw = try txn.get(store.meta, ProjectionStore.checkpointKey) else { return 0 }
        return raw.withUnsafeBytes { SequenceKey.decode($0) } ?? 0
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
