import TallyCore
import TallyStore

/// A batch of events folded in memory, with what its transaction writes.
///
/// The fold of a batch has two halves: loading and folding its contacts (`ProjectionFolder.load`,
/// ``ProjectionFolder/fold(_:)``), and writing the result with the checkpoint (``ProjectionFolder/write(_:in:)``).
/// A batch-by-batch fold runs both in one transaction; a ``FoldPipeline`` runs the first half of one batch while
/// another thread writes the one before.
struct FoldedBatch: Sendable {
    /// What the fold of one event leaves for the transaction to write.
    enum Note: Sendable {
        /// Nothing folded: an erasure's record, a delivery outcome (T7), a clock event (D1) or the relays' progress
        /// (K4), which the transaction applies to what is stored.
        case stored
        /// A rules switch (A3): the passes it starts (U2, T4), and whether it ends a rebuild's prefix (A4).
        case rules(backfill: BackfillPass?, existing: ExistingTriggersPass?, endsPrefix: Bool)
        /// A contact event's outcome.
        case contact(FoldOutcome)
        /// An event for a contact merged into another partition's, relayed there (K4).
        case relay(Relay)
    }

    /// The checkpoint the batch continues.
    var done: UInt64
    var events: [LoggedEvent]
    /// I2: the alias an event named, by event index, for the events resolved to the contact it merged into.
    var origins: [Int: String]
    /// K4: the partition an event goes to, by event index, for the events relayed rather than folded.
    var relays: [Int: Int]
    /// Per event, what its fold left to write.
    var notes: [Note] = []
    /// The batch's contacts and open sessions, loaded and then folded.
    var working = Projection()
    /// What the list indexes hold of the batch's contacts as stored before it (``ContactRecordWrite/indexed(_:)``).
    var previous: [ByteString: ContactState] = [:]
    /// The batch's history links and audit entries (A1).
    var trails = TrailBatch()
    /// The batch's contact records with their index changes, encoded in key order (which keeps LMDB's page splits
    /// local) at the end of the fold; none when the folder defers them (``DeferredContacts``).
    var records: [ContactRecordWrite] = []
    /// Whether the batch leaves its contacts' records and open hits to the folder's ``DeferredContacts``.
    var defersContacts = false
    /// The rules after the batch.
    var rulesAfter: RulesState
    /// The `rebuild` event the batch folded, if any.
    var rebuildFolded: UInt64?

    init(done: UInt64, events: [LoggedEvent], origins: [Int: String], relays: [Int: Int], rules: RulesState) {
        self.done = done
        self.events = events
        self.origins = origins
        self.relays = relays
        self.rulesAfter = rules
    }

    /// The sequence number of the batch's last event: the checkpoint after it.
    var last: UInt64 { events[events.count - 1].seq }
}

extension ProjectionFolder {
    /// Loads the contacts and open sessions that `batch`'s contact events (and, with `alsoOutcomes`, its delivery
    /// outcomes) name. `stored` gives a contact's committed state, nil for a contact the store does not hold (the
    /// fold sees it as new, T2); `prepare` brings a loaded contact up to date with a pass under way (T4, U2), and
    /// `absent` is told of a contact the store does not hold.
    func load(
        into batch: inout FoldedBatch, alsoOutcomes: Bool, stored: (ByteString) throws -> ContactState?,
        storedHit: (SessionKey) throws -> OpenHit?, prepare: (String, inout ContactState) throws -> Void,
        absent: (String) throws -> Void
    ) throws {
        // Every table here compares ids as bytes (ByteString, SessionKey), as the stored tables do (SPEC §1).
        var loaded: Set<ByteString> = []
        loaded.reserveCapacity(batch.events.count)
        batch.previous.reserveCapacity(batch.events.count)
        batch.working.contacts.reserveCapacity(batch.events.count)
        // Indices rather than `for logged in events`: an event is a wide struct, and copying one per loop costs a
        // retain and a release of each of its strings.
        for index in batch.events.indices
        where batch.relays[index] == nil
            && (batch.events[index].event.type.isContactEvent
                || (alsoOutcomes && batch.events[index].event.type.isDeliveryOutcome))
        {
            let contact = ByteString(batch.events[index].event.contact)
            if loaded.insert(contact).inserted {
                if var state = try stored(contact) {
                    batch.previous[contact] = ContactRecordWrite.indexed(state)
                    try prepare(contact.string, &state)
                    batch.working.contacts[contact] = state
                } else {
                    try absent(contact.string)
                }
            }
            if batch.events[index].event.type == .urlHit, let session = batch.events[index].event.session {
                let key = SessionKey(contact: contact.string, session: session)
                if batch.working.openHits[key] == nil { batch.working.openHits[key] = try storedHit(key) }
            }
        }
    }

    /// Folds `batch`'s loaded contacts through its events, in log order — scores, audit entries and history links,
    /// and the rules switches — and encodes the contact records. Reads nothing stored but the log's rules events.
    func fold(_ batch: inout FoldedBatch) throws {
        batch.notes.reserveCapacity(batch.events.count)
        for index in batch.events.indices {
            let seq = batch.events[index].seq
            let type = batch.events[index].event.type
            if type.switchesRules {
                let wasPinned = batch.rulesAfter.pinned
                let scorerBefore = batch.rulesAfter.scorer
                let existing = try batch.rulesAfter.apply(batch.events[index]) { version in
                    try self.rules(version: version)
                }
                let patterns =
                    batch.rulesAfter.pinned ? [] : batch.rulesAfter.scorer.newPatterns(comparedTo: scorerBefore)
                if type == .rebuild { batch.rebuildFolded = seq }
                // U2: the patterns this version introduces get every contact's history, in a pass that runs in
                // turn with the fold (no pass is under way: a rules switch waits for it to end).
                batch.notes.append(
                    .rules(
                        backfill: patterns.isEmpty ? nil : BackfillPass(seq: seq, patterns: patterns.map(\.text)),
                        existing: existing.isEmpty
                            ? nil
                            : ExistingTriggersPass(
                                seq: seq, at: batch.events[index].event.at, triggers: existing.map(\.id)),
                        endsPrefix: type == .rebuild && wasPinned && !batch.rulesAfter.pinned))
                continue
            }
            if let partition = batch.relays[index], let home {
                batch.notes.append(
                    .relay(
                        Relay.make(
                            batch.events[index].event, at: AuditPosition(seq: seq, index: 0), from: home.partition,
                            to: partition)))
                continue
            }
            if type.isDeliveryOutcome {
                batch.trails.event(batch.events[index].event.contact, seq: seq)
            }
            guard type.isContactEvent else {
                batch.notes.append(.stored)  // a delivery outcome, a clock event or an erasure's record
                continue
            }
            batch.trails.event(batch.events[index].event.contact, seq: seq)
            var outcome = batch.working.apply(batch.events[index].event, scorer: batch.rulesAfter.scorer)
            if !firesEffects(of: batch.events[index].event.contact) { outcome.sideEffects = [] }
            if !outcome.awards.isEmpty {
                let version = batch.rulesAfter.scorer.version
                let origin = batch.origins[index]
                let logged = batch.events[index]
                batch.trails.awards(
                    contact: logged.event.contact,
                    outcome.awards.map { award in
                        var entry = AuditEntry(award, of: logged, version: version)
                        entry.origin = origin
                        return entry
                    })
            }
            batch.notes.append(.contact(outcome))
        }
        guard !batch.defersContacts else { return }
        // The keys are sorted, not the states, which would be copied.
        let keys = batch.working.contacts.keys
        batch.records = keys.indices.sorted(by: { keys[$0] < keys[$1] }).map { index in
            ContactRecordWrite(
                keys[index].string, batch.working.contacts.values[index], previous: batch.previous[keys[index]])
        }
    }

    /// Writes a folded batch in `txn`, with the checkpoint and the rules cursor (A5): in log order, the rules
    /// switches' passes, the delivery outcomes (T7), the clock's now and the aging pass it starts (D1), the URL
    /// facts, waiting awards and outbox entries (T6) of contact events; then the history and audit (A1), the contacts
    /// and their indexes, and the open sessions. Touches nothing but `txn` (a ``FoldPipeline`` calls it from its
    /// writer thread), and may run again when `update` reruns its transaction.
    static func write(_ batch: FoldedBatch, in txn: ProjectionTransaction) throws {
        guard try txn.checkpoint() == batch.done else {
            throw CorruptRecordError(table: "meta", message: "checkpoint moved under the projector")
        }
        var urlFacts = URLFactBatch()
        for index in batch.events.indices {
            let seq = batch.events[index].seq
            switch batch.notes[index] {
            case .rules(let backfill, let existing, let endsPrefix):
                if let backfill { try txn.setBackfillPass(backfill) }
                if endsPrefix { try txn.setRebuildSeq(seq) }
                if let existing { try txn.setExistingTriggersPass(existing) }
            case .stored:
                let event = batch.events[index].event
                if event.type.isDeliveryOutcome {
                    try txn.applyDeliveryOutcome(event)
                } else if event.type == .clock, event.at > (try txn.now() ?? .min) {
                    // D1: the greatest clock `at` is now; awards due by then are aged by the pass this starts,
                    // before any later event (the clock ends the batch).
                    try txn.setNow(event.at)
                    try txn.addClock(event.at, seq: seq)
                    if try txn.hasAging(dueBy: event.at) { try txn.setAgingPass(AgingPass(seq: seq, now: event.at)) }
                } else if let through = Relay.position(publishedBy: event) {
                    try txn.removeRelays(through: through)
                }
            case .relay(let relay):
                try txn.addRelay(relay)
            case .contact(let outcome):
                let event = batch.events[index].event
                if let fact = outcome.urlFact {
                    try txn.addURLFact(fact, contact: event.contact, seq: seq, to: &urlFacts)
                }
                for (position, award) in outcome.awards.enumerated() {
                    if let waiting = AgingAward(award, contact: event.contact, at: event.at) {
                        try txn.addAging(waiting, seq: seq, index: UInt32(position))
                    }
                }
                for effect in outcome.sideEffects {
                    if let entry = OutboxEntry(effect, firedSeq: seq) { try txn.addOutboxEntry(entry) }
                }
            }
        }
        try txn.append(batch.trails)
        try txn.addURLFacts(urlFacts)
        for record in batch.records { try txn.setContact(record) }
        if !batch.defersContacts {
            for (key, hit) in batch.working.openHits { try txn.setOpenHit(key, hit) }
        }
        try txn.setRulesCursor(version: batch.rulesAfter.scorer.version, published: batch.rulesAfter.published)
        try txn.setCheckpoint(batch.last)
        FaultInjection.point("projector")
    }

    /// Takes in a batch whose transaction committed: its states join the caches (or wait to be written, when it
    /// deferred them), and the folder moves past it.
    func committed(_ batch: FoldedBatch) {
        if batch.defersContacts {
            for (contact, state) in batch.working.contacts {
                deferred.update(contact, state, loadedFrom: batch.previous[contact])
            }
            for (key, hit) in batch.working.openHits { deferred.update(key, hit) }
        } else {
            for (contact, state) in batch.working.contacts { contactCache.insert(contact, state) }
            for (key, hit) in batch.working.openHits { sessionCache.insert(key, hit) }
        }
        rules = batch.rulesAfter
        checkpoint = batch.last
        if let rebuildFolded = batch.rebuildFolded { foldedRebuild = rebuildFolded }
    }
}
