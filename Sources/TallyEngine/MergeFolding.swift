import Foundation
import TallyCore
import TallyStore

extension ProjectionFolder {
    /// Rewrites the contact of every event for an alias to the contact it resolves to (I2), returning the ids the
    /// events named, by index, and — in a cluster partition (K4) — the partition each event for a contact merged
    /// into a foreign one goes to instead of being folded. Nothing is read while no contact has been merged.
    func resolveAliases(_ events: inout [LoggedEvent]) throws -> (origins: [Int: String], relays: [Int: Int]) {
        guard try store.read({ try $0.hasAliases() }) else { return ([:], [:]) }
        var origins: [Int: String] = [:]
        var relays: [Int: Int] = [:]
        try store.read { txn in
            for index in events.indices
            where events[index].event.type.isContactEvent || events[index].event.type.isDeliveryOutcome {
                guard let canonical = try txn.canonical(of: events[index].event.contact) else { continue }
                if let home, home.isForeign(canonical) {
                    // A delivery outcome stays here, with the outbox entry it concerns, under the id it names.
                    if events[index].event.type.isContactEvent {
                        relays[index] = home.partitioning.partition(of: canonical)
                        events[index].event.contact = canonical
                    }
                    continue
                }
                origins[index] = events[index].event.contact
                events[index].event.contact = canonical
            }
        }
        return (origins, relays)
    }

    /// Folds a `contact.merge` (I2–I5) in a transaction of its own: the union of the two contacts' histories is
    /// folded again for the merged contact (``ContactMerge``), whose records replace both contacts' — state, open
    /// sessions, URL facts, waiting awards — while the merged contact's audit trail takes the other's entries and
    /// one `merge` entry per score that the union changes; the alias then resolves to the merged contact. The cost
    /// follows the two histories (I5). A merge of a contact into itself (or into one of its aliases), or one from
    /// the ingest socket whose `from` is known by now (I1), changes nothing but the histories that name it.
    func foldMerge(_ logged: LoggedEvent) throws {
        let done = checkpoint
        let rulesEvents = try log.rulesEvents().filter { $0.seq < logged.seq }
        let start = try startingRules()
        try store.update { txn in
            guard try txn.checkpoint() == done else {
                throw CorruptRecordError(table: "meta", message: "checkpoint moved under the projector")
            }
            let event = logged.event
            let from = try txn.canonical(of: event.contact) ?? event.contact
            let target = event.mergeTarget ?? event.contact
            let into = try txn.canonical(of: target) ?? target
            let existing = try txn.existingTriggersPass()
            var fromState = try txn.contact(from)
            // Ids compare as bytes: two spellings of "café" are two contacts (SPEC §1).
            let distinct = ByteString(from) != ByteString(into)
            guard distinct, event.value != 1 || fromState?.known != true else {
                try txn.addHistory(from, seq: logged.seq)
                if distinct { try txn.addHistory(into, seq: logged.seq) }
                try txn.setCheckpoint(logged.seq)
                return
            }
            if let home {
                // K4: `from` merged into a foreign contact before, or `into` foreign: another partition folds it.
                let fromAway = ByteString(from) != ByteString(event.contact) && home.isForeign(from)
                if fromAway || home.isForeign(into) {
                    try moveOut(logged, from: from, into: into, fromAway: fromAway, home: home, txn: txn)
                    return
                }
            }
            // T4: both contacts get a trigger_existing pass's firing first, if it has not reached them yet.
            let storedFrom = fromState
            if var state = fromState {
                try bringUpToDate(from, &state, existing: existing, txn: txn)
                fromState = state
            }
            let storedInto = try txn.contact(into)
            var intoState = storedInto
            if var state = intoState {
                try bringUpToDate(into, &state, existing: existing, txn: txn)
                intoState = state
            }
            if existing != nil { try txn.markDoneByExistingPass(into) }
            // K4: a contact moved in from another partition brings its state there: what it fired and set (triggers,
            // tags, segments, campaigns, fields, addresses) is that one's; its scores are this fold's of its history,
            // which its audit entries here sum to.
            if let home, home.isForeign(from), var moved = try Self.movedState(logged.event), let folded = fromState {
                (moved.points, moved.groups) = (folded.points, folded.groups)
                fromState = moved
            }
            let seqs = (try txn.history(from) + txn.history(into)).sorted()
            var inputs = MergeInputs(
                merge: logged, from: from, into: into, fromState: fromState, intoState: intoState,
                history: try log.events(at: seqs), rulesEvents: rulesEvents, start: start,
                rulesOfVersion: { version in try self.rules(version: version) },
                clock: { due, after in try txn.firstClock(atOrAfter: due, after: after) }, scorer: rules.scorer)
            if let home,
                inputs.history.contains(where: { $0.event.type.isContactEvent && home.isForeign($0.event.contact) })
            {
                (inputs.history, inputs.positions) = try Self.inTimeOrder(
                    inputs.history, clockBefore: { seq in try txn.clockNow(before: seq) },
                    firstClockAfter: { now in try txn.firstClock(atOrAfter: now, after: 0)?.seq })
            }
            let result = try ContactMerge.fold(inputs)
            try txn.removeAging(awardedAt: seqs)
            for (key, award) in result.aging { try txn.addAging(award, seq: key.seq, index: key.index) }
            try txn.moveAudit(from: from, into: into)
            var trails = TrailBatch()
            trails.awards(contact: into, result.audit)
            try txn.append(trails)
            try txn.removeOpenHits(contact: from)
            try txn.removeOpenHits(contact: into)
            for (key, hit) in result.openHits { try txn.setOpenHit(key, hit) }
            try txn.replaceURLVisits(contact: from, with: [])
            try txn.replaceURLVisits(contact: into, with: result.urlVisits)
            if let storedFrom { try txn.removeContact(from, previous: storedFrom) }
            try txn.setContact(into, result.state, previous: storedInto)
            try txn.moveHistory(from: from, into: into)
            try txn.addHistory(into, seq: logged.seq)
            try txn.addAlias(from, to: into)
            for effect in result.outcome.sideEffects {
                if let entry = OutboxEntry(effect, firedSeq: logged.seq) { try txn.addOutboxEntry(entry) }
            }
            try txn.setCheckpoint(logged.seq)
            FaultInjection.point("projector")
        }
        contactCache.removeAll()
        sessionCache.removeAll()
        checkpoint = logged.seq
    }

    /// K4: the order in which a merge folds a union that holds history moved in from another partition (events of a
    /// foreign contact, which arrived after the others). There is no log order across partitions, but there is one
    /// of clock events — every partition gets them in the same order — so each event belongs after a clock event: a
    /// moved event after the one it followed where it was first logged (``Event/originClock``), one of this log after
    /// the last clock before it. Between two clock events the order is by time, ties in log order: a single node's
    /// wherever the events came in the order of their times. Each event is folded at the position (among the log's
    /// rules and clock events) of the first event after it in that order, and before the next clock event. Every
    /// later merge of the same contact orders its union so again (the moved events stay foreign in the log, and keep
    /// their origin clock when moved on), so a contact's history keeps one order. Returns the events with the
    /// positions they are folded before (their own sequence numbers, for this log's events in order).
    static func inTimeOrder(
        _ history: [LoggedEvent], clockBefore: (UInt64) throws -> Int64?, firstClockAfter: (Int64) throws -> UInt64?
    ) rethrows -> (history: [LoggedEvent], positions: [UInt64]) {
        var clocks: [Int64] = []
        clocks.reserveCapacity(history.count)
        for logged in history { clocks.append(try logged.event.originClock ?? clockBefore(logged.seq) ?? .min) }
        let order = history.indices.sorted {
            (clocks[$0], history[$0].event.at, $0) < (clocks[$1], history[$1].event.at, $1)
        }
        var positions = [UInt64](repeating: 0, count: order.count)
        var earliest = UInt64.max
        for index in order.indices.reversed() {
            earliest = min(earliest, history[order[index]].seq)
            positions[index] = earliest
        }
        var nextClock: (after: Int64, seq: UInt64?)?
        for index in order.indices where clocks[order[index]] < .max {
            let clock = clocks[order[index]]
            if nextClock?.after != clock { nextClock = (clock, try firstClockAfter(clock + 1)) }
            if let seq = nextClock?.seq { positions[index] = min(positions[index], seq) }
        }
        return (order.map { history[$0] }, positions)
    }

    /// K4: the state a merge relayed from another partition carries for the contact it moves (its `text`).
    static func movedState(_ merge: Event) throws -> ContactState? {
        guard let text = merge.text else { return nil }
        guard let bytes = Data(base64Encoded: text) else {
            throw CorruptRecordError(table: "events", message: "a moved contact's state that is not base64")
        }
        return try bytes.withUnsafeBytes { try ContactCodec.decode($0) }
    }

    /// K4: a merge this partition does not fold goes to the partition that does, through the relays. When `from`
    /// was merged into a foreign contact before (`fromAway`), that contact's partition judges the merge, and only the
    /// merge goes. When `into` is foreign, `from` moves there: its history (each event for `from`, in log order;
    /// that partition folds them for it, firing nothing, then the merge), its records removed here, and `from` an
    /// alias of `into`, so that later events for it are relayed too. I1 is judged here then: the merge goes as the
    /// admin socket's.
    private func moveOut(
        _ logged: LoggedEvent, from: String, into: String, fromAway: Bool, home: PartitionHome,
        txn: ProjectionTransaction
    ) throws {
        var relayed: [Event] = []
        var merge = Event.merge(
            from: from, into: into, at: logged.event.at, id: logged.event.id, viaIngest: logged.event.value == 1)
        if !fromAway {
            // The state goes with the history: the one brought here, when `from` was moved in, else this one.
            let state = try txn.contact(from)
            merge.text = logged.event.text ?? state.map { Data(ContactCodec.encode($0)).base64EncodedString() }
            relayed = try log.events(at: try txn.history(from)).compactMap { moved in
                guard moved.event.type.isContactEvent else { return nil }
                var event = moved.event
                event.contact = from
                event.originClock = try event.originClock ?? txn.clockNow(before: moved.seq) ?? .min
                return event
            }
            try txn.removeRecords(of: from)
            try txn.addAlias(from, to: into)
            merge.value = 0
        }
        let target = home.partitioning.partition(of: fromAway ? from : into)
        for (index, event) in (relayed + [merge]).enumerated() {
            try txn.addRelay(
                Relay.make(
                    event, at: AuditPosition(seq: logged.seq, index: UInt32(index)), from: home.partition, to: target))
        }
        try txn.setCheckpoint(logged.seq)
        FaultInjection.point("projector")
    }

    /// The rules state this fold began with: pinned to a rebuild's version for its prefix (A4), else fresh.
    private func startingRules() throws -> RulesState {
        let timeout = rules.scorer.sessionTimeout
        if let until = rules.pinnedUntil {
            return RulesState(
                sessionTimeout: timeout, pinnedTo: rules.scorer.version, rules: rules.scorer.rules, until: until)
        }
        let rebuild = try store.read { txn in try txn.rebuildSeq() }
        guard rebuild > 0, let event = try log.event(at: rebuild), let version = event.value else {
            return RulesState(sessionTimeout: timeout)
        }
        return RulesState(
            sessionTimeout: timeout, pinnedTo: version, rules: try rules(version: version), until: rebuild)
    }
}
