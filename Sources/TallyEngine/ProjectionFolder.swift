import Foundation
public import TallyCore
public import TallyStore

/// Folds the event log into one projection store, one bounded batch per transaction: the live projector, a
/// rebuild and `verify` all fold with it.
///
/// Each transaction writes the batch's contact states, open sessions, audit entries (A1), the outbox entries
/// fired (T6) and the delivery outcomes of the log applied to them (T7), together with the checkpoint and the
/// rules cursor (A5). A batch ends after a `rules.published` or
/// `rebuild` event, where the version switches (A3); a publication that turns `trigger_existing` on starts a
/// pass over every stored contact, a bounded batch of contacts per transaction, resumable after a crash (T4).
/// A batch also ends after a clock event that moves the fold's now (D1): when awards are due by then, it starts a
/// pass that ages them in due order (D4), a bounded batch of awards per transaction, resumable after a crash.
///
/// `@unchecked Sendable` because ownership, not the type system, keeps it safe: its mutable state (rules,
/// checkpoint, version and state caches) is only touched by the one thread that owns the folder — the
/// projector's, or a rebuild's until it hands the folder over through the projector's `Mutex`, which orders the
/// accesses. A ``FoldPipeline``'s writer thread only runs the static ``write(_:in:)`` on batches handed to it.
public final class ProjectionFolder: @unchecked Sendable {
    /// Events folded per transaction.
    public static let batchSize = 10_000
    /// Events folded per transaction by a projector far behind the log that syncs its commits
    /// (`projections_durability: commit`): a hot page is then rewritten, and synced, once per this many events rather
    /// than per ``batchSize``.
    public static let catchUpBatchSize = 25_000
    /// Events folded per transaction by a rebuild, which commits without syncing: small enough to bound the
    /// transaction's dirty pages — LMDB holds them in memory, and the rebuild runs beside the live projections —
    /// while batch size hardly moves the fold's speed (10,000 and 200,000 rebuild alike, 4,000 takes ≈ 5 % longer;
    /// `performance.md`).
    public static let rebuildBatchSize = 4_000
    /// Contacts visited per transaction by a `trigger_existing` pass.
    public static let existingBatchSize = 10_000
    /// Awards aged per transaction by a clock event's pass.
    public static let agingBatchSize = 10_000

    /// The sizes that bound a folder's memory and transactions; none of them may change what is folded (the
    /// batching property test folds with small ones to reach every cut).
    public struct Limits: Sendable {
        /// Contacts visited per transaction by a `trigger_existing` pass.
        public var existingBatchSize: Int
        /// Committed contact states, and open session hits, kept decoded across batches (each).
        public var cachedStates: Int
        /// Awards aged per transaction by a clock event's pass (D4).
        public var agingBatchSize: Int

        public init(
            existingBatchSize: Int = ProjectionFolder.existingBatchSize, cachedStates: Int = 10_000,
            agingBatchSize: Int = ProjectionFolder.agingBatchSize
        ) {
            self.existingBatchSize = max(existingBatchSize, 1)
            self.cachedStates = max(cachedStates, 2)
            self.agingBatchSize = max(agingBatchSize, 1)
        }
    }

    public let log: EventLog
    public let store: ProjectionStore
    /// The cluster partition this fold is for (K4), nil on a single node: events for contacts merged into another
    /// partition's are relayed there, and a foreign contact's events fire nothing (``PartitionHome``).
    public let home: PartitionHome?
    public internal(set) var rules: RulesState
    /// The last sequence number folded.
    public internal(set) var checkpoint: UInt64
    /// The sequence number of the latest `rebuild` event folded by ``step(through:)``, if any.
    public internal(set) var foldedRebuild: UInt64?
    private var versions: [Int64: RuleSet] = [:]
    let limits: Limits
    /// Whether the next step runs a batch of a pass that takes turns with the events (U2 backfill, T4).
    private var passTurn = false
    /// Committed contact states and open session hits, so hot contacts are not read back for every batch. While a
    /// ``FoldPipeline`` defers contact records, ``deferred`` is the contacts' cache instead, and every step that
    /// reads the store directly runs after they are written.
    var contactCache: StateCache<ByteString, ContactState>
    var sessionCache: StateCache<SessionKey, OpenHit>
    /// The contact states a throwaway fold's batches left unwritten (empty unless a ``FoldPipeline`` defers them):
    /// the newest state of each contact, ahead of the store and of ``contactCache``.
    var deferred = DeferredContacts()

    /// Continues the projections in `store` from their checkpoint, with the rules version they were at; `home` is
    /// the cluster partition they are for.
    public init(
        log: EventLog, store: ProjectionStore, sessionTimeout: Int64, home: PartitionHome? = nil,
        limits: Limits = Limits()
    ) throws {
        self.log = log
        self.store = store
        self.home = home
        self.limits = limits
        contactCache = StateCache(limit: limits.cachedStates)
        sessionCache = StateCache(limit: limits.cachedStates)
        let (checkpoint, cursor) = try store.read { txn in (try txn.checkpoint(), try txn.rulesCursor()) }
        self.checkpoint = checkpoint
        self.rules = RulesState(sessionTimeout: sessionTimeout)
        if cursor.version > 0 {
            let scorer = Scorer(
                rules: try rules(version: cursor.version), sessionTimeout: sessionTimeout, version: cursor.version)
            rules = RulesState(scorer: scorer, published: cursor.published)
        } else {
            rules = RulesState(
                scorer: Scorer(rules: RuleSet(), sessionTimeout: sessionTimeout), published: cursor.published)
        }
    }

    /// Folds the log from the start into the empty `store` with the events before the rebuild event at
    /// `until` scored under rules `version` (a rebuild, or with `until: .max` a dry run).
    public init(
        log: EventLog, emptyStore store: ProjectionStore, sessionTimeout: Int64, version: Int64, until: UInt64,
        home: PartitionHome? = nil, limits: Limits = Limits()
    )
        throws
    {
        self.log = log
        self.store = store
        self.home = home
        self.limits = limits
        contactCache = StateCache(limit: limits.cachedStates)
        sessionCache = StateCache(limit: limits.cachedStates)
        self.checkpoint = 0
        self.rules = RulesState(sessionTimeout: sessionTimeout)
        rules = RulesState(
            sessionTimeout: sessionTimeout, pinnedTo: version, rules: try rules(version: version), until: until)
    }

    /// The sequence number through which every event is fully applied: the checkpoint, or the event before it
    /// while the checkpoint's event has a pass under way (T4, D4) — what readers of their own writes wait for.
    public func completed() throws -> UInt64 {
        try store.read { txn in
            if try txn.passPending() { return checkpoint &- 1 }
            // A `trigger_existing` pass takes turns with the fold: reads wait for it (a contact it has not reached
            // would not show the publication's firings yet), ingest and the fold do not.
            if let existing = try txn.existingTriggersPass() { return min(checkpoint, existing.seq &- 1) }
            return checkpoint
        }
    }

    /// The rules of a published version, parsed from its `rules.published` event in the log.
    public func rules(version: Int64) throws -> RuleSet {
        if let known = versions[version] { return known }
        let publications = try log.rulesEvents().filter { $0.event.type == .rulesPublished }
        guard version >= 1, version <= Int64(publications.count) else {
            throw RulesVersionError(seq: 0, message: "rules version \(version) is not in the log")
        }
        let rules = try RulesState.rules(of: publications[Int(version) - 1], version: version)
        versions[version] = rules
        return rules
    }

    /// Folds the next batch of at most `size` events (never beyond `limit`), or the next batch of a clock event's
    /// aging pass, or (in turn with the events) of a `trigger_existing` pass or a U2 backfill. Returns false when
    /// there was nothing to do.
    @discardableResult
    public func step(through limit: UInt64 = .max, size: Int = batchSize) throws -> Bool {
        let (aging, existing, backfill) = try store.read { txn in
            (try txn.agingPass(), try txn.existingTriggersPass(), try txn.backfillPass())
        }
        if let aging {
            try continueAging(aging)
            return true
        }
        // The passes that take turns with the fold: the U2 backfill and the `trigger_existing` pass (T4). A contact
        // an event touches before its pass reaches it is brought up to date first.
        if passTurn, try continuePass(existing, backfill) {
            passTurn = false
            return true
        }
        passTurn = true
        let done = checkpoint
        var events =
            done < limit ? try log.read(from: done + 1, limit: Int(min(UInt64(max(size, 1)), limit - done))) : []
        // A pass ends before the next rules switch (what it applies is the rules in force's).
        if backfill != nil || existing != nil, let first = events.firstIndex(where: \.event.type.switchesRules) {
            events.removeSubrange(first...)
        }
        guard !events.isEmpty else { return try continuePass(existing, backfill) }
        // A merge is folded in a transaction of its own (I3): it reads both contacts' records as stored.
        if let merge = events.firstIndex(where: \.event.type.isMerge) {
            if merge == 0 {
                try foldMerge(events[0])
                return true
            }
            events.removeSubrange(merge...)
        }
        if let end = events.firstIndex(where: \.event.type.endsBatch) {
            events.removeSubrange((end + 1)...)
        }
        // I2: events for an alias apply to the contact it resolves to; their audit entries name the alias. Only
        // this thread changes aliases, so they are read before the transaction.
        let (origins, relays) = try resolveAliases(&events)
        let backfilling = backfill.map { pass in (pass, pass.patterns.map { URLPattern($0) }) }
        var batch = FoldedBatch(done: done, events: events, origins: origins, relays: relays, rules: rules)
        try store.update { txn in
            // `update` may rerun
            batch = FoldedBatch(done: done, events: events, origins: origins, relays: relays, rules: rules)
            // Contacts absent from the store stay absent, so the fold sees them as new (T2). While a
            // trigger_existing pass runs, a delivery outcome's contact is loaded too: the pass's firing of an effect
            // comes before an outcome for it (T4, T7), as at the publication.
            try load(
                into: &batch, alsoOutcomes: existing != nil,
                stored: { contact in try self.contactCache.value(contact) ?? txn.contact(contact.string) },
                storedHit: { key in try self.sessionCache.value(key) ?? txn.openHit(key) }
            ) { contact, state in
                // T4: a contact the trigger_existing pass has not reached yet gets its firing first.
                try self.bringUpToDate(contact, &state, existing: existing, txn: txn)
                // U2: a contact the backfill has not reached yet is brought up to date before its events.
                if let (pass, patterns) = backfilling, pass.pending(contact) {
                    state.backfill(patterns, from: try txn.urlVisits(contact: contact))
                }
            } absent: { contact in
                // T4: a contact first stored after the publication is not the pass's, even when its history starts
                // before it (a delivery outcome can name a contact no event has made yet): the pass must skip it
                // when it gets there, as it would have had it run at once.
                if let existing, existing.pending(contact) { try txn.markDoneByExistingPass(contact) }
            }
            try fold(&batch)
            try Self.write(batch, in: txn)
        }
        committed(batch)
        return true
    }

    /// Writes the contact states and open hits the batches deferred, in key order, with the contacts' index changes:
    /// afterwards the store holds every folded state, as a batch-by-batch fold would have left it, and ``deferred``
    /// none (a step, which reads the store, follows).
    func writeDeferred() throws {
        guard let flush = takeDeferred(keeping: 0) else { return }
        try store.update { txn in try flush.write(in: txn) }
        deferred.flushCommitted()
    }

    /// Takes the deferred states and open hits out to be written (nil when there are none), keeping the `keeping`
    /// states used most; ``deferred`` shows the flush's states until ``DeferredContacts/flushCommitted()``.
    func takeDeferred(keeping: Int) -> DeferredFlush? {
        guard deferred.count > 0 else { return nil }
        // A step's batches cached states that the deferred batches then changed behind the caches.
        contactCache.removeAll()
        sessionCache.removeAll()
        return deferred.takeFlush(keeping: keeping)
    }

    /// One batch of a clock event's aging pass (D2–D4): ages the awards due by the clock's now, first due first,
    /// each followed by the triggers watching the score it changed; an award with a later step goes back into the
    /// due index under that step's time.
    private func continueAging(_ start: AgingPass) throws {
        var working: [ByteString: ContactState] = [:]
        try store.update { txn in
            working = [:]  // `update` may run this again
            var previous: [ByteString: ContactState] = [:]
            var pass = start
            let existing = try txn.existingTriggersPass()
            var trails = TrailBatch()
            var taken = 0
            let scorer = rules.scorer
            while taken < limits.agingBatchSize, let (key, waiting) = try txn.takeFirstAging(dueBy: pass.now) {
                taken += 1
                let contact = ByteString(waiting.contact)
                if working[contact] == nil {
                    // Every aging award's contact is stored (it was awarded); one that is not has nothing to age.
                    guard var state = try contactCache.value(contact) ?? txn.contact(waiting.contact) else { continue }
                    previous[contact] = ContactRecordWrite.indexed(state)
                    try bringUpToDate(waiting.contact, &state, existing: existing, txn: txn)
                    working[contact] = state
                }
                var award = waiting
                let outcome = scorer.age(&award, seq: key.seq, state: &working[contact, default: ContactState()])
                if !outcome.awards.isEmpty {
                    trails.awards(
                        contact: waiting.contact,
                        outcome.awards.map {
                            AuditEntry(aged: $0, due: key.due, clock: pass.seq, version: scorer.version)
                        },
                        firstIndex: pass.entries)
                    pass.entries += UInt32(outcome.awards.count)
                }
                for effect in outcome.sideEffects where firesEffects(of: waiting.contact) {
                    if let entry = OutboxEntry(effect, firedSeq: pass.seq) { try txn.addOutboxEntry(entry) }
                }
                try txn.addAging(award, seq: key.seq, index: key.index)
            }
            try txn.append(trails)
            let keys = working.keys
            for index in keys.indices.sorted(by: { keys[$0] < keys[$1] }) {
                try txn.setContact(keys[index].string, working.values[index], previous: previous[keys[index]])
            }
            try txn.setAgingPass(taken < limits.agingBatchSize ? nil : pass)
            FaultInjection.point("projector")
        }
        for (contact, state) in working { contactCache.insert(contact, state) }
    }

    /// One batch of a U2 backfill: the next contacts with URL facts, in id order, get the page-visit state of the
    /// pass's patterns from their whole history.
    private func continueBackfill(_ pass: BackfillPass) throws {
        let patterns = pass.patterns.map { URLPattern($0) }
        var written: [(ByteString, ContactState)] = []
        try store.update { txn in
            written = []
            let batch = try txn.contactsWithURLVisits(after: pass.after, limit: limits.existingBatchSize)
            for contact in batch {
                let key = ByteString(contact)
                guard let stored = try contactCache.value(key) ?? txn.contact(contact) else { continue }
                var state = stored
                state.backfill(patterns, from: try txn.urlVisits(contact: contact))
                guard state != stored else { continue }
                try txn.setContact(contact, state, previous: stored)
                written.append((key, state))
            }
            var next = pass
            next.after = batch.last
            try txn.setBackfillPass(batch.count < limits.existingBatchSize ? nil : next)
        }
        for (contact, state) in written { contactCache.insert(contact, state) }
    }

    /// One batch of a `trigger_existing` pass (T4): fires the pass's triggers for the next contacts in id order,
    /// skipping those an event reached first and those first seen after the publication.
    private func continueExisting(_ pass: ExistingTriggersPass) throws {
        contactCache.removeAll()  // the pass rewrites contacts behind the cache
        let triggers = rules.scorer.rules.triggers.filter { pass.triggers.contains($0.id) }
        try store.update { txn in
            let batch = try txn.contacts(after: pass.after, limit: limits.existingBatchSize)
            for (contact, stored) in batch {
                var state = stored
                guard try fire(pass, triggers, for: contact, &state, txn: txn) == true else { continue }
                try txn.setContact(contact, state, previous: stored)
            }
            var next = pass
            next.after = batch.last?.0
            try txn.setExistingTriggersPass(batch.count < limits.existingBatchSize ? nil : next)
        }
    }

    /// T4: fires the `trigger_existing` pass's triggers for a stored contact it has not reached yet, judged at the
    /// publication's time as the pass would have, before anything else changes the contact; the contact is then
    /// done for the pass. A contact first seen after the publication is not the pass's.
    func bringUpToDate(
        _ contact: String, _ state: inout ContactState, existing: ExistingTriggersPass?, txn: ProjectionTransaction
    ) throws {
        guard let existing, existing.pending(contact) else { return }
        let triggers = rules.scorer.rules.triggers.filter { existing.triggers.contains($0.id) }
        guard try fire(existing, triggers, for: contact, &state, txn: txn) != nil else { return }
        try txn.markDoneByExistingPass(contact)
    }

    /// T4: fires `triggers` (the pass's) for `contact` at the publication's time, with their side effects, unless
    /// the contact is not the pass's: done already, or first seen after the publication. Returns whether any fired,
    /// nil when the contact is not the pass's.
    private func fire(
        _ pass: ExistingTriggersPass, _ triggers: [PointTrigger], for contact: String, _ state: inout ContactState,
        txn: ProjectionTransaction
    ) throws -> Bool? {
        guard try !txn.isDoneByExistingPass(contact), let first = try txn.firstHistory(contact), first < pass.seq
        else { return nil }
        let outcome = rules.scorer.fireExisting(triggers, contact: contact, state: &state, at: pass.at)
        for effect in outcome.sideEffects where firesEffects(of: contact) {
            if let entry = OutboxEntry(effect, firedSeq: pass.seq) { try txn.addOutboxEntry(entry) }
        }
        return !outcome.fired.isEmpty
    }

    /// Whether `contact`'s firings become outbox entries here: not for a contact foreign to the partition, whose
    /// history this partition folds only until the merge that moved it (its own partition fired its effects, K4).
    func firesEffects(of contact: String) -> Bool { home?.isForeign(contact) != true }

    /// One batch of the pass that takes its turn (a `trigger_existing` pass before a U2 backfill); false when
    /// neither is under way.
    private func continuePass(_ existing: ExistingTriggersPass?, _ backfill: BackfillPass?) throws -> Bool {
        if let existing {
            try continueExisting(existing)
        } else if let backfill {
            try continueBackfill(backfill)
        } else {
            return false
        }
        return true
    }
}
