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
    struct Entry {
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

    /// The number of contacts or of sessions held, whichever is greater.
    var count: Int { max(entries.count, sessions.count) }

    /// The latest open hit of a session, when the table holds it.
    func hit(_ session: SessionKey) -> OpenHit? { sessions[session] }

    /// Records a batch's open hit of a session.
    mutating func update(_ session: SessionKey, _ hit: OpenHit) { sessions[session] = hit }

    /// The open hits to write, in key order; empties their table.
    mutating func takeSessions() -> [(SessionKey, OpenHit)] {
        defer { sessions.removeAll() }
        return sessions.sorted { a, b in
            ByteString.equal(a.key.contact, b.key.contact)
                ? ByteString.precedes(a.key.session, b.key.session)
                : ByteString.precedes(a.key.contact, b.key.contact)
        }.map { ($0.key, $0.value) }
    }

    /// The latest folded state of `contact`, when the table holds it.
    func state(_ contact: ByteString) -> ContactState? { entries[contact]?.state }

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

    /// The writes that bring the store to the table's states, in key order. Afterwards the table holds, as written,
    /// the `keeping` states used most since the last flush.
    mutating func takeWrites(keeping: Int) -> [ContactRecordWrite] {
        // Positions are sorted, not entries, which would be copied.
        let (keys, values) = (entries.keys, entries.values)
        let writes = keys.indices.filter { values[$0].uses > 0 }.sorted { keys[$0] < keys[$1] }.map { index in
            ContactRecordWrite(keys[index].string, values[index].state, previous: values[index].stored)
        }
        var kept: [ByteString: Entry] = [:]
        if keeping > 0 {
            kept.reserveCapacity(keeping)
            for index in keys.indices.sorted(by: { values[$0].uses > values[$1].uses }).prefix(keeping) {
                let state = values[index].state
                kept[keys[index]] = Entry(state: state, stored: ContactRecordWrite.indexed(state), uses: 0)
            }
        }
        entries = kept
        return writes
    }
}
