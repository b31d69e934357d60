/// What a merge (I2–I4) needs to know: the two contacts as stored and the log around their events. The projector
/// reads it from its tables, ``LogReplay`` from memory; both fold it with ``ContactMerge/fold(_:)``.
public struct MergeInputs {
    /// The `contact.merge` event.
    public var merge: LoggedEvent
    /// The contacts merged, as their ids resolve: `from` becomes an alias of `into`.
    public var from: String
    public var into: String
    public var fromState: ContactState?
    public var intoState: ContactState?
    /// Both contacts' events before the merge, in the order folded: log order, or as ``positions`` place them.
    public var history: [LoggedEvent]
    /// Where each event of ``history`` is folded among the log's rules and clock events — after every one before this
    /// sequence number, and before the one at it — when not at its own: a contact's history moved in from another
    /// partition (K4) is placed among the other's events by clock events, then by time. Non-decreasing; nil: each
    /// event at its own.
    public var positions: [UInt64]?
    /// Every `rules.published` and `rebuild` event before the merge, in log order.
    public var rulesEvents: [LoggedEvent]
    /// The rules state the fold started from: fresh, or pinned for a rebuild's prefix (A4).
    public var start: RulesState
    /// The rules of a published version.
    public var rulesOfVersion: (Int64) throws -> RuleSet
    /// The first clock event after the sequence number given whose now is at or after the time given (D4).
    public var clock: (_ due: Int64, _ after: UInt64) throws -> (now: Int64, seq: UInt64)?
    /// The rules in force at the merge.
    public var scorer: Scorer

    public init(
        merge: LoggedEvent, from: String, into: String, fromState: ContactState?, intoState: ContactState?,
        history: [LoggedEvent], rulesEvents: [LoggedEvent], start: RulesState,
        rulesOfVersion: @escaping (Int64) throws -> RuleSet,
        clock: @escaping (Int64, UInt64) throws -> (now: Int64, seq: UInt64)?, scorer: Scorer
    ) {
        self.merge = merge
        self.from = from
        self.into = into
        self.fromState = fromState
        self.intoState = intoState
        self.history = history
        self.positions = nil
        self.rulesEvents = rulesEvents
        self.start = start
        self.rulesOfVersion = rulesOfVersion
        self.clock = clock
        self.scorer = scorer
    }
}

/// The merged contact (I3, I4): its state, and what replaces the two contacts' records beside it.
public struct MergeResult {
    public var state: ContactState
    /// The open session hits of both contacts' sessions (they stay distinct), under the merged contact.
    public var openHits: [SessionKey: OpenHit]
    /// The URL facts of both histories (U2).
    public var urlVisits: [(url: String, visit: URLVisit)]
    /// The merged contact's awards still waiting to expire or decay (D2, D3).
    public var aging: [(AgingKey, AgingAward)]
    /// One `merge` entry per score whose merged value differs from the sum of the two (I4, A2).
    public var audit: [AuditEntry]
    /// The triggers the merged scores newly reach, fired at the merge.
    public var outcome: FoldOutcome
}

/// Merging two contacts (I3): the merged state is the fold of the union of both contacts' events in log order,
/// each under the rules version in force at it — with the clock events at which its awards aged, the
/// publications' `trigger_existing` triggers and new URL patterns — replayed for the merged contact alone, at a
/// cost that follows the two histories (I5).
///
/// What the two contacts already did to the world stays done: the trigger events fired for either are the
/// merged contact's (none fires again) with the tags, segments and campaigns they set; fields and addresses are
/// both contacts', the merged-into contact's value winning. Then the triggers the merged scores reach fire, at
/// the merge.
public enum ContactMerge {
    public static func fold(_ inputs: MergeInputs) throws -> MergeResult {
        let into = inputs.into
        var replay = LogReplay(rules: inputs.start, keepsHistories: false)
        var position: UInt64 = 0
        var rules = inputs.rulesEvents[...]
        let rulesOfVersion = inputs.rulesOfVersion

        /// Folds the clock events before `seq` that age one of the merged contact's awards.
        func age(before seq: UInt64) throws {
            while let due = replay.aging.firstDue, let clock = try inputs.clock(due, position), clock.seq < seq {
                try replay.apply(
                    LoggedEvent(seq: clock.seq, event: Event(type: .clock, contact: into, at: clock.now)),
                    rulesOfVersion: rulesOfVersion)
                position = clock.seq
            }
        }
        /// Folds the rules events before `seq`, each after the clocks before it.
        func switchRules(before seq: UInt64) throws {
            while let next = rules.first, next.seq < seq {
                try age(before: next.seq)
                try replay.apply(next, rulesOfVersion: rulesOfVersion)
                position = next.seq
                rules.removeFirst()
            }
            try age(before: seq)
        }

        for (offset, logged) in inputs.history.enumerated()
        where logged.event.type.isContactEvent && logged.seq < inputs.merge.seq {
            let at = inputs.positions?[offset] ?? logged.seq
            try switchRules(before: at)
            var event = logged.event
            event.contact = into
            try replay.apply(LoggedEvent(seq: logged.seq, event: event), rulesOfVersion: rulesOfVersion)
            // Folded before `at`: a clock event placed there (K4, a moved event) still ages what is due.
            position = max(position, at - 1)
        }
        try switchRules(before: inputs.merge.seq)

        let key = ByteString(into)
        var state = replay.projection.contacts[key] ?? ContactState()
        let a = inputs.fromState ?? ContactState()
        let b = inputs.intoState ?? ContactState()
        state.fired = a.fired.union(b.fired)
        state.rearms = a.rearms.merging(b.rearms) { _, kept in kept }
        state.tags = a.tags.union(b.tags)
        state.segments = a.segments.union(b.segments)
        state.campaigns = a.campaigns.union(b.campaigns)
        state.fields = a.fields.merging(b.fields) { _, kept in kept }
        state.email = b.email ?? a.email
        state.ownerEmail = b.ownerEmail ?? a.ownerEmail
        state.known = true

        var audit: [AuditEntry] = []
        let groups = Set(a.groups.keys).union(b.groups.keys).union(state.groups.keys).sorted {
            ByteString($0) < ByteString($1)
        }
        for group in [nil] + groups.map(Optional.some) {
            let delta = state.score(group: group) &- a.score(group: group) &- b.score(group: group)
            guard delta != 0 else { continue }
            audit.append(
                AuditEntry(
                    seq: inputs.merge.seq, eventID: inputs.merge.event.id, at: inputs.merge.event.at, kind: .merge,
                    action: "(merge)", version: inputs.scorer.version, group: group, delta: delta,
                    scoreAfter: state.score(group: group),
                    reason: "merge of \"\(inputs.from)\" (\(a.score(group: group))) into \"\(into)\" "
                        + "(\(b.score(group: group))): their events folded together give \(state.score(group: group))"
                ))
        }
        let outcome = inputs.scorer.fireReached(contact: into, state: &state, at: inputs.merge.event.at)
        return MergeResult(
            state: state, openHits: replay.projection.openHits,
            urlVisits: (replay.urlVisits[key] ?? [:]).sorted { $0.key < $1.key }.map { ($0.key.string, $0.value) },
            aging: replay.aging.sorted, audit: audit, outcome: outcome)
    }
}
