import TallyCore
import TallyStore

/// The contact states and open session hits a throwaway fold has folded but not written yet: a rebuild before its
/// switch, or the scratch fold of `verify` and of a rebuild's dry run. No reader sees such a store until the fold
/// ends, and a crash starts it again from the log, so its contact records need not follow every batch: a hot contact
/// is written once per ``FoldPipeline`` flush rather than once per batch it is in, and a flush writes in key order.
///
/// Each entry keeps the state the store holds for the contact (nil: none), from which the flush computes the list
/// indexes' changes, so that the records and indexes a flush leaves equal those of a batch-by-batch fold. The
/// table is also the fold's cache of decoded states meanwhile: a flush keeps the states used most since the last one.
struct DeferredContacts {
    struct Entry: Sendable {
        var state: ContactState
        /// What the list indexes hold of the contact's stored record (``ContactRecordWrite/indexed(_:)``); nil when it
        /// has none.
        var stored: ContactState?
        /// Batches that changed the contact since the last flush; 0: ``state`` is what is stored.
        var uses: UInt32
    }

    private(set) var entries: [ByteString: Entry] = [:]
    /// The open session hits (U5) the batches changed since the last flush.
    private var sessions: [SessionKey: OpenHit] = [:]
    /// The flush being written on the pipeline's writer thread: until it has committed, the states it writes are
    /// the newest of the contacts the table no longer holds.
    private var writing: DeferredFlush?

    /// The number of contacts or of sessions held, whichever is greater.
    var count: Int { max(entries.count, sessions.count) }

    /// The latest open hit of a session, when the table or the flush being written holds it.
    func hit(_ session: SessionKey) -> OpenHit? { sessions[session] ?? writing?.sessions[session] }

    /// Records a batch's open hit of a session.
    mutating func update(_ session: SessionKey, _ hit: OpenHit) { sessions[session] = hit }

    /// The latest folded state of `contact`, when the table or the flush being written holds it.
    func state(_ contact: ByteString) -> ContactState? {
        entries[contact]?.state ?? writing?.entries[contact]?.state
    }

    /// Records a batch's state of `contact`; `stored` is what the batch loaded it from, which is the stored record
    /// when the table did not hold the contact.
    mutating func update(_ contact: ByteString, _ state: ContactState, loadedFrom stored: ContactState?) {
        if let index = entries.index(forKey: contact) {
            entries.values[index].state = state
            entries.values[index].uses = max(entries.values[index].uses, entries.values[index].uses &+ 1)  // saturating
        } else {
            entries[contact] = Entry(state: state, stored: stored.map(ContactRecordWrite.indexed), uses: 1)
        }
    }

    /// Takes the table's states and open hits out as a flush to write, leaving the `keeping` states used most since
    /// the last flush (as the flush writes them). Until ``flushCommitted()``, the flush's states stay visible to
    /// ``state(_:)`` and ``hit(_:)``, so that batches may be folded while it is written.
    mutating func takeFlush(keeping: Int) -> DeferredFlush {
        precondition(writing == nil, "a deferred flush is still being written")
        var kept: [ByteString: Entry] = [:]
        if keeping > 0 {
            kept.reserveCapacity(keeping)
            let (keys, values) = (entries.keys, entries.values)
            for index in keys.indices.sorted(by: { values[$0].uses > values[$1].uses }).prefix(keeping) {
                let state = values[index].state
                kept[keys[index]] = Entry(state: state, stored: ContactRecordWrite.indexed(state), uses: 0)
            }
        }
        let flush = DeferredFlush(entries: entries, sessions: sessions)
        (entries, sessions, writing) = (kept, [:], flush)
        return flush
    }

    /// Records that the flush last taken has committed: the store holds its states.
    mutating func flushCommitted() { writing = nil }
}

/// The contact states and open hits a ``DeferredContacts`` table held at a flush, to be written in key order with
/// the contacts' index changes. Made on the folding thread, which encodes the states and diffs the indexes; written
/// on the fold pipeline's writer thread while the folding thread goes on with the next batch (the two threads then
/// take about equal shares of a rebuild, `performance.md`).
struct DeferredFlush: Sendable {
    /// The states as folded, for the batches folded while the flush is written.
    let entries: [ByteString: DeferredContacts.Entry]
    let sessions: [SessionKey: OpenHit]
    /// The records of the states changed since they were stored, in key order.
    private let writes: [ContactRecordWrite]

    init(entries: [ByteString: DeferredContacts.Entry], sessions: [SessionKey: OpenHit]) {
        self.entries = entries
        self.sessions = sessions
        // Positions are sorted, not entries, which would be copied.
        let (keys, values) = (entries.keys, entries.values)
        writes = keys.indices.filter { values[$0].uses > 0 }.sorted { keys[$0] < keys[$1] }.map { index in
            ContactRecordWrite(keys[index].string, values[index].state, previous: values[index].stored)
        }
    }

    /// Writes the changed states and the open hits, each in key order.
    func write(in txn: ProjectionTransaction) throws {
        for write in writes { try txn.setContact(write) }
        let hits = sessions.sorted { a, b in
            ByteString.equal(a.key.contact, b.key.contact)
                ? ByteString.precedes(a.key.session, b.key.session)
                : ByteString.precedes(a.key.contact, b.key.contact)
        }
        for (key, hit) in hits { try txn.setOpenHit(key, hit) }
    }
}
