/// The scoring fold: applies one event to one contact's state under one rule set (S1–S6, U1–U6).
///
/// Pure: no I/O and no clock. Time is the event's `at`, so a replay of the same log under the same rules gives
/// the same state and the same awards.
public struct Scorer: Sendable {
    public let rules: RuleSet
    /// The rules version: the number of the `rules.published` event that carried ``rules``; 0 before any (A3).
    public let version: Int64
    /// Cap of one hit's dwell, milliseconds (U5).
    public let sessionTimeout: Int64
    private let actionsByType: [EventType: [PointAction]]
    /// The distinct `url.hit` patterns, each tracked once however many actions share it.
    private let patterns: [URLPattern]
    /// The distinct `url.hit` patterns whose page-visit state the contact states keep.
    public var urlPatterns: [URLPattern] { patterns }
    /// The `url.hit` actions in file order, each with the index of its pattern in ``patterns``.
    private let urlActions: [(action: PointAction, pattern: Int)]
    private let triggers: TriggerEvaluator

    public init(rules: RuleSet, sessionTimeout: Int64 = 30 * 60_000, version: Int64 = 0) {
        self.rules = rules
        self.version = version
        self.sessionTimeout = sessionTimeout
        self.actionsByType = Dictionary(grouping: rules.actions, by: \.type)
        var seen: Set<ByteString> = []
        let patterns = rules.actions.compactMap(\.url).filter { seen.insert($0.key).inserted }
        self.patterns = patterns
        self.urlActions = (actionsByType[.urlHit] ?? []).compactMap { action in
            guard let url = action.url, let index = patterns.firstIndex(where: { $0.key == url.key }) else {
                return nil
            }
            return (action, index)
        }
        self.triggers = TriggerEvaluator(triggers: rules.triggers)
    }

    /// Folds one event into its contact: point actions, then the triggers watching the scores that changed
    /// (T1–T3), or all triggers when `isNew` (the contact's first event, T2).
    public func fold(
        _ event: Event, into state: inout ContactState, openHit: inout OpenHit?, isNew: Bool
    )
        -> FoldOutcome
    {
        var outcome = FoldOutcome()
        switch event.type {
        case .urlHit:
            var closed: (url: String, dwell: Int64)?
            outcome.awards = apply(event, to: &state, openHit: &openHit, closed: &closed)
            if let url = event.url { outcome.urlFact = URLFact(url: url, at: event.at, closed: closed) }
        case .contactUpdate:
            state.known = true
            if let email = event.email { state.email = email }
            if let ownerEmail = event.ownerEmail { state.ownerEmail = ownerEmail }
            Self.applyFields(event.fields, to: &state)
            outcome.awards = judgeFields(event, &state)
        case .pointsChange, .pointsSet:
            state.known = true
            if event.type == .pointsSet, let email = event.email { state.email = email }
            if let award = Self.change(event, &state) { outcome.awards = [award] }
        default:
            outcome.awards = apply(event, to: &state, openHit: &openHit)
        }
        var changed = ScoreChanges()
        for award in outcome.awards where award.delta != 0 {
            changed.add(award.group, before: award.scoreAfter &- award.delta)
        }
        triggers.evaluate(
            contact: event.contact, state: &state, changed: changed, isNew: isNew, at: event.at, outcome: &outcome)
        return outcome
    }

    /// Fires, for a contact that already exists, the `trigger_existing` triggers a new rules version publishes
    /// (T4), judged at `at` (the publication's time).
    public func fireExisting(
        _ triggers: [PointTrigger], contact: String, state: inout ContactState, at: Int64
    ) -> FoldOutcome {
        var outcome = FoldOutcome()
        for trigger in triggers
        where trigger.fallsBelow == nil && trigger.window.contains(at)
            && state.score(group: trigger.group) >= trigger.minPoints
        {
            self.triggers.reach(trigger, contact: contact, state: &state, outcome: &outcome)
        }
        return outcome
    }

    /// I3: fires, for a merged contact, the `min_points` triggers its scores reach that have not fired for it,
    /// judged at `at` (the merge's time).
    public func fireReached(contact: String, state: inout ContactState, at: Int64) -> FoldOutcome {
        var outcome = FoldOutcome()
        triggers.evaluate(
            contact: contact, state: &state, changed: ScoreChanges(), isNew: true, at: at, outcome: &outcome)
        return outcome
    }

    /// D2, D3: applies the next step of an aging award to its contact at the step's due time, then the triggers
    /// watching the score it changed (D4, T2). `award` moves on to its following step. The outcome holds the
    /// expiry or decay as an award (none when the step changes nothing); `seq` is the awarding event's, which the
    /// reason names.
    public func age(_ award: inout AgingAward, seq: UInt64, state: inout ContactState) -> FoldOutcome {
        var outcome = FoldOutcome()
        guard let due = award.due else { return outcome }
        let step = award.aging.steps[award.step]
        let before = state.score(group: award.group)
        let applied = state.add(Aging.kept(step.keep, of: award.delta) &- award.remaining, group: award.group)
        award.remaining &+= applied
        award.step += 1
        guard applied != 0 else { return outcome }
        let age = DurationText.format(step.after)
        let made = "the award of \(award.delta) at \(Timestamp.format(award.awardedAt)) (event \(seq))"
        outcome.awards = [
            Award(
                kind: award.aging.kind == .expiry ? .expiry : .decay, action: award.action, group: award.group,
                delta: applied, scoreAfter: state.score(group: award.group),
                reason: award.aging.kind == .expiry
                    ? "expired: \(made) is \(age) old (expires_after \(age))"
                    : "decayed: \(made) is \(age) old and keeps \(step.keep)% = \(award.remaining)")
        ]
        triggers.evaluate(
            contact: award.contact, state: &state, changed: ScoreChanges(award.group, before: before), isNew: false,
            at: due,
            outcome: &outcome)
        return outcome
    }

    /// F1: sets and removes fields in the update's order. A field that would take the contact past
    /// ``FieldLimits/perContact`` is not set (the API refuses such an update; this keeps the bound on any log).
    static func applyFields(_ updates: [FieldUpdate], to state: inout ContactState) {
        for update in updates {
            if let value = update.value {
                guard state.fields[update.name] != nil || state.fields.count < FieldLimits.perContact else { continue }
                state.fields[update.name] = value
            } else {
                state.fields[update.name] = nil
            }
        }
    }

    /// F2: after an update, awards each `contact.field` action whose condition has become true (in force at the
    /// update's time, S2) and reverses each award whose condition has become false, in file order. An action
    /// still true keeps its award; one not in the rules any more keeps it too (nothing judges it).
    private func judgeFields(_ event: Event, _ state: inout ContactState) -> [Award] {
        var awards: [Award] = []
        for action in actionsByType[.contactUpdate] ?? [] {
            guard let condition = action.field else { continue }
            let holds = condition.holds(in: state.fields)
            if let award = state.fieldAwards[action.id] {
                guard !holds else { continue }
                state.fieldAwards[action.id] = nil
                let applied = state.add(0 &- award.delta, group: award.group)
                awards.append(
                    Award(
                        kind: .field, action: action.id, group: award.group, delta: applied,
                        scoreAfter: state.score(group: award.group),
                        reason: "no longer \(condition.text): \(condition.current(in: state.fields)); award of "
                            + "\(award.delta) reversed"))
            } else if holds, action.delta != 0, action.window.contains(event.at) {
                let applied = state.add(action.delta, group: action.group)
                state.fieldAwards[action.id] = FieldAward(group: action.group, delta: applied)
                awards.append(
                    Award(
                        kind: .field, action: action.id, group: action.group, delta: applied,
                        scoreAfter: state.score(group: action.group),
                        reason: "\(condition.text): \(condition.current(in: state.fields))"))
            }
        }
        return awards
    }

    /// A manual change (M1) or an imported score (M2): the real delta, and the reason in words.
    static func change(_ event: Event, _ state: inout ContactState) -> Award? {
        guard let value = event.value else { return nil }
        let operation = event.type == .pointsSet ? .set : event.operation ?? .plus
        let old = state.score(group: event.group)
        guard let new = operation.apply(to: old, value) else { return nil }  // division by zero: refused at the API
        state.set(new, group: event.group)
        let score = event.group.map { "\($0) score" } ?? "score"
        let reason: String
        let kind: Award.Kind
        if event.type == .pointsSet {
            kind = .imported
            reason = "imported from \(event.reason ?? "a file"): \(score) set to \(new), was \(old)"
        } else {
            kind = .manual
            let why = event.reason.map { ": \($0)" } ?? ""
            reason = "manual \(operation.name) \(value)\(why) (\(score) was \(old), now \(new))"
        }
        return Award(
            kind: kind, action: kind == .imported ? "(import)" : "(manual)", group: event.group, delta: new &- old,
            scoreAfter: new, reason: reason)
    }

    /// Applies an event that carries no session state; see ``apply(_:to:openHit:)``.
    public func apply(_ event: Event, to state: inout ContactState) -> [Award] {
        var none: OpenHit?
        return apply(event, to: &state, openHit: &none)
    }

    /// Applies `event` to `state` and returns the awards it earned, in file order (S5).
    ///
    /// `openHit` is the open hit of the event's session (nil without a session or before its first hit); for a
    /// `url.hit` with a session, it is replaced by this hit.
    public func apply(_ event: Event, to state: inout ContactState, openHit: inout OpenHit?) -> [Award] {
        var closed: (url: String, dwell: Int64)?
        return apply(event, to: &state, openHit: &openHit, closed: &closed)
    }

    /// ``apply(_:to:openHit:)``, telling which URL's dwell a `url.hit` closed (its session's open hit).
    func apply(
        _ event: Event, to state: inout ContactState, openHit: inout OpenHit?,
        closed: inout (url: String, dwell: Int64)?
    ) -> [Award] {
        if event.type == .urlHit, let url = event.url {
            return applyURLHit(event, url: url, to: &state, openHit: &openHit, closed: &closed)
        }
        var awards: [Award] = []
        for action in actionsByType[event.type] ?? [] {
            let item = event.item ?? ""
            guard action.items.isEmpty || action.items.contains(ByteString(item)) else { continue }  // S1, as bytes
            award(action, event, Self.reason(event.type, item: item), &state, &awards)
        }
        return awards
    }

    /// Adds the action's delta if it is published at the event's time (S2) and not already used up (S3).
    private func award(
        _ action: PointAction, _ event: Event, _ reason: @autoclosure () -> String, _ state: inout ContactState,
        _ awards: inout [Award]
    ) {
        guard action.delta != 0, action.window.contains(event.at) else { return }  // S2; delta 0 awards nothing
        guard action.repeatable || !state.awarded.contains(action.id) else { return }  // S3
        if !action.repeatable { state.awarded.insert(action.id) }
        if action.isCapped {
            guard Self.capAllows(action, state.caps[action.id], at: event.at) else { return }
            // Recorded in place: a copy taken out of `caps` would share its buffer and copy it on the insert.
            state.caps[action.id, default: CapState()].record(
                at: event.at, keep: action.maxPer.map { Int($0.count) } ?? 0)
        }
        let applied = state.add(action.delta, group: action.group)  // S4
        awards.append(
            Award(
                action: action.id, group: action.group, delta: applied, scoreAfter: state.score(group: action.group),
                reason: reason(), aging: action.aging))
    }

    /// The reason of an item event's award, `email.open of "newsletter-3"`, written into one allocation.
    private static func reason(_ type: EventType, item: String) -> String {
        let name = type.name
        var reason = ""
        reason.reserveCapacity(name.utf8.count + item.utf8.count + 6)
        reason += name
        reason += " of \""
        reason += item
        reason += "\""
        return reason
    }

    /// C1, C2: whether the action's caps allow another award at `at`.
    private static func capAllows(_ action: PointAction, _ cap: CapState?, at: Int64) -> Bool {
        let cap = cap ?? CapState()
        if let maxAwards = action.maxAwards, cap.count >= maxAwards { return false }  // C1
        if let maxPer = action.maxPer, !cap.allows(maxPer, at: at) { return false }  // C2, on event time
        return true
    }

    /// U2–U6: close the session's open hit, update every pattern's visit state, then judge the actions.
    private func applyURLHit(
        _ event: Event, url: String, to state: inout ContactState, openHit: inout OpenHit?,
        closed: inout (url: String, dwell: Int64)?
    )
        -> [Award]
    {
        // What this hit does to each pattern, by index in `patterns` (no hashing of pattern keys per hit), on the
        // stack for a rules file's few patterns.
        withUnsafeTemporaryAllocation(of: PatternMark.self, capacity: patterns.count) { marks in
            marks.initialize(repeating: PatternMark())
            // U5: this hit closes the open hit of its session, crediting its dwell to the patterns it matched.
            if event.session != nil, let open = openHit {
                let closedDwell = min(max(event.at - open.at, 0), sessionTimeout)
                closed = (open.url, closedDwell)
                for index in patterns.indices where patterns[index].matches(open.url) {
                    state.visits[patterns[index].key, default: VisitStats()].dwell += closedDwell
                    marks[index].closed = true
                }
            }
            openHit = event.session == nil ? nil : OpenHit(at: event.at, url: url)

            // U2–U4: count this hit for the patterns it matches; remember the previous matching hit's time.
            for index in patterns.indices where patterns[index].matches(url) {
                marks[index].previousAt = state.visits[patterns[index].key]?.lastAt
                state.visits[patterns[index].key, default: VisitStats()].count(at: event.at)
                marks[index].matched = true
            }

            // U6: judge every action whose pattern this hit matches, and time_spent actions whose pattern the
            // closed hit matched; the reason is written only for an award.
            var awards: [Award] = []
            for (action, index) in urlActions {
                let mark = marks[index]
                let closesMatching = mark.closed && action.conditions.timeSpent != nil
                guard mark.matched || closesMatching else { continue }
                let pattern = patterns[index]
                let stats = state.visits[pattern.key] ?? VisitStats()
                guard
                    let judgment = Judgment(
                        action.conditions, stats: stats, matching: mark.matched, previousAt: mark.previousAt,
                        at: event.at)
                else { continue }
                award(action, event, judgment.reason(url: url, pattern: pattern), &state, &awards)
            }
            return awards
        }
    }

    /// What one `url.hit` did to one pattern.
    private struct PatternMark {
        /// The hit closed an open hit that matched the pattern (U5).
        var closed = false
        /// The hit matches the pattern.
        var matched = false
        /// The `at` of the previous matching hit, when the hit matches (U4).
        var previousAt: Int64?
    }

    /// The measured values of a `url.hit` action's conditions when they all hold (U6): what its reason states.
    private struct Judgment {
        let conditions: URLConditions
        let matching: Bool
        let hits: Int64
        let gap: Int64?
        let dwell: Int64

        /// Nil unless every configured condition holds at this evaluation.
        init?(_ conditions: URLConditions, stats: VisitStats, matching: Bool, previousAt: Int64?, at: Int64) {
            // On a closing hit that does not match, only the earlier matching hits are counted (U6).
            if let needed = conditions.pageHits, stats.hits < Int64(needed) { return nil }
            var gap: Int64?
            if conditions.returnsWithin != nil || conditions.returnsAfter != nil {
                guard matching, let previousAt else { return nil }  // U4: the first matching hit satisfies neither
                gap = at - previousAt
                guard let gap, gap >= 0 else { return nil }
                if let within = conditions.returnsWithin, gap > within { return nil }
                if let after = conditions.returnsAfter, gap < after { return nil }
            }
            if let needed = conditions.timeSpent, stats.dwell < needed { return nil }
            (self.conditions, self.matching, self.hits, self.gap, self.dwell) =
                (conditions, matching, stats.hits, gap, stats.dwell)
        }

        /// The measured values in words.
        func reason(url: String, pattern: URLPattern) -> String {
            var parts = [matching ? "visited \(url) (matches \(pattern.text))" : "left a page matching \(pattern.text)"]
            if let needed = conditions.pageHits { parts.append("page_hits \(hits) ≥ \(needed)") }
            if let gap, let within = conditions.returnsWithin {
                parts.append("returned after \(DurationText.describe(gap)) ≤ \(DurationText.format(within))")
            }
            if let gap, let after = conditions.returnsAfter {
                parts.append("returned after \(DurationText.describe(gap)) ≥ \(DurationText.format(after))")
            }
            if let needed = conditions.timeSpent {
                parts.append("time spent \(DurationText.describe(dwell)) ≥ \(DurationText.format(needed))")
            }
            return parts.joined(separator: ", ")
        }
    }
}
