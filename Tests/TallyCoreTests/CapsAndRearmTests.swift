import TallyCore
import Testing

/// C1, C2 (caps on event time), T8 (`falls_below`) and T9 (`rearm`) in the fold, at their boundaries.
@Suite("Caps C1 C2 and triggers T8 T9 in the fold")
struct CapsAndRearmTests {
    static let t: Int64 = 1_767_225_600_000
    static let second: Int64 = 1_000

    static func open(_ at: Int64, contact: String = "c") -> Event {
        Event(type: .emailOpen, contact: contact, at: at, item: "news")
    }

    static func submit(_ at: Int64, item: String = "unsubscribe") -> Event {
        Event(type: .formSubmit, contact: "c", at: at, item: item)
    }

    static func minus(_ value: Int64, at: Int64 = t) -> Event {
        Event(type: .pointsChange, contact: "c", at: at, value: value, operation: .minus)
    }

    /// Folds `events` through one projection; returns the contact's state and every outcome.
    static func fold(_ events: [Event], _ yaml: String) throws -> (ContactState, [FoldOutcome]) {
        let scorer = Scorer(rules: try RulesParser.parse(yaml))
        var projection = Projection()
        let outcomes = events.map { projection.apply($0, scorer: scorer) }
        return (projection.contacts["c"] ?? ContactState(), outcomes)
    }

    /// Whether each outcome awarded points.
    static func awarded(_ outcomes: [FoldOutcome]) -> [Bool] { outcomes.map { !$0.awards.isEmpty } }

    // MARK: C1

    @Test("C1 max_awards: 3 awards the 3rd event and refuses the 4th and every later one")
    func maxAwardsBoundary() throws {
        let (state, outcomes) = try Self.fold(
            (0..<5).map { Self.open(Self.t + $0) },
            "actions: [{ id: open, type: email.open, delta: 5, repeatable: true, max_awards: 3 }]")
        #expect(Self.awarded(outcomes) == [true, true, true, false, false])
        #expect(state.points == 15)
        #expect(state.caps["open"] == CapState(count: 3))
    }

    @Test("C1 max_awards counts per contact: another contact has its own N")
    func maxAwardsPerContact() throws {
        let scorer = Scorer(
            rules: try RulesParser.parse(
                "actions: [{ id: open, type: email.open, delta: 5, repeatable: true, max_awards: 1 }]"))
        var projection = Projection()
        for contact in ["a", "a", "b", "b"] { projection.apply(Self.open(Self.t, contact: contact), scorer: scorer) }
        #expect(projection.contacts["a"]?.points == 5)
        #expect(projection.contacts["b"]?.points == 5)
    }

    // MARK: C2

    static let onePer10s =
        "actions: [{ id: open, type: email.open, delta: 1, repeatable: true, max_per: { count: 1, within: 10s } }]"
    static let twoPer10s =
        "actions: [{ id: open, type: email.open, delta: 1, repeatable: true, max_per: { count: 2, within: 10s } }]"

    @Test("C2 an award at exactly t − D is outside the window (excluded): the event at t is awarded")
    func windowStartExcluded() throws {
        let (_, outcomes) = try Self.fold([Self.open(Self.t), Self.open(Self.t + 10 * Self.second)], Self.onePer10s)
        #expect(Self.awarded(outcomes) == [true, true])
    }

    @Test("C2 an award 1 ms after t − D is inside the window: the event at t is refused")
    func windowJustInside() throws {
        let (_, outcomes) = try Self.fold(
            [Self.open(Self.t), Self.open(Self.t + 10 * Self.second - 1)], Self.onePer10s)
        #expect(Self.awarded(outcomes) == [true, false])
    }

    @Test("C2 an award at exactly t is inside the window (included): a second event at t is refused")
    func windowEndIncluded() throws {
        let (_, outcomes) = try Self.fold([Self.open(Self.t), Self.open(Self.t)], Self.onePer10s)
        #expect(Self.awarded(outcomes) == [true, false])
    }

    @Test("C2 count: 2 awards two events in the window and refuses the third; the window slides on event time")
    func countTwo() throws {
        let (state, outcomes) = try Self.fold(
            [
                Self.open(Self.t), Self.open(Self.t + Self.second), Self.open(Self.t + 2 * Self.second),
                Self.open(Self.t + 10 * Self.second), Self.open(Self.t + 11 * Self.second - 1),
                Self.open(Self.t + 11 * Self.second),
            ], Self.twoPer10s)
        // t+10s: window (t, t+10s] holds t+1s only. t+11s−1ms: holds t+1s and t+10s. t+11s: t+1s is at its start.
        #expect(Self.awarded(outcomes) == [true, true, false, true, false, true])
        #expect(state.caps["open"]?.recent == [Self.t + 10 * Self.second, Self.t + 11 * Self.second])
    }

    @Test("C2 out of time order: a late event is judged on its own window; awards after t do not count")
    func lateEvents() throws {
        // 2 per 10s, logged out of time order: t+20s; t (late: the award at t+20s is after its window); t+21s
        // (window (t+11s, t+21s] holds t+20s only); t+15s (window (t+5s, t+15s]: t before it, t+20s after it);
        // t+25s (window (t+15s, t+25s] holds t+20s and t+21s: refused; t+15s is at its excluded start).
        let (_, outcomes) = try Self.fold(
            [
                Self.open(Self.t + 20 * Self.second), Self.open(Self.t), Self.open(Self.t + 21 * Self.second),
                Self.open(Self.t + 15 * Self.second), Self.open(Self.t + 25 * Self.second),
            ], Self.twoPer10s)
        #expect(Self.awarded(outcomes) == [true, true, true, true, false])
    }

    @Test("C2 out of time order: a late event whose window holds an award no longer kept is refused")
    func lateEventWithForgottenAward() throws {
        // 1 per 10s keeps one time. Logged: t+20s (kept); t (late, awarded: nothing in (t−10s, t]; not kept, as
        // older than t+20s); t+5s: its window (t−5s, t+5s] holds the award at t → refused, as a full history
        // would; t+30s: window (t+20s, t+30s] excludes t+20s at its start → awarded.
        let (state, outcomes) = try Self.fold(
            [
                Self.open(Self.t + 20 * Self.second), Self.open(Self.t), Self.open(Self.t + 5 * Self.second),
                Self.open(Self.t + 30 * Self.second),
            ], Self.onePer10s)
        #expect(Self.awarded(outcomes) == [true, true, false, true])
        #expect(
            state.caps["open"]
                == CapState(count: 3, recent: [Self.t + 30 * Self.second], forgotten: Self.t + 20 * Self.second))
    }

    @Test("C2 a late event whose window might hold a forgotten award is refused: a cap never over-awards")
    func lateEventConservative() throws {
        // After t+20s and t (1 per 10s), only t+20s is kept and "something at or before t" is known. An event at
        // t−20s could be alone in its window (t−30s, t−20s], but the state cannot tell: refused (Docs/decisions.md).
        let (_, outcomes) = try Self.fold(
            [Self.open(Self.t + 20 * Self.second), Self.open(Self.t), Self.open(Self.t - 20 * Self.second)],
            Self.onePer10s)
        #expect(Self.awarded(outcomes) == [true, true, false])
    }

    @Test("C1 C2 both caps on one action: whichever is stricter refuses")
    func bothCaps() throws {
        let (_, outcomes) = try Self.fold(
            (0..<4).map { Self.open(Self.t + Int64($0) * 60 * Self.second) },
            """
            actions:
              - { id: open, type: email.open, delta: 1, repeatable: true, max_awards: 2,
                  max_per: { count: 1, within: 1m } }
            """)
        #expect(Self.awarded(outcomes) == [true, true, false, false])
    }

    // MARK: T8

    static let fallsBelow10 = """
        actions:
          - { id: open, type: email.open, delta: 15, repeatable: true }
          - { id: unsubscribe, type: form.submit, delta: -5, repeatable: true, items: [unsubscribe] }
        triggers: [{ id: cooling, falls_below: 10, events: [{ id: tag, type: tags.modify, add: [cold] }] }]
        """

    @Test("T8 a negative action taking the score from 10 to 5 fires; from 15 to 10 does not (10 is not below 10)")
    func fallsBelowAfterNegativeAction() throws {
        let (state, outcomes) = try Self.fold(
            [Self.open(Self.t), Self.submit(Self.t + 1), Self.submit(Self.t + 2), Self.submit(Self.t + 3)],
            Self.fallsBelow10)
        #expect(outcomes.map(\.fired) == [[], [], ["cooling/tag"], []], "15 → 10 → 5 → 0")
        #expect(state.tags == ["cold"])
    }

    @Test("T8 a new contact at 0 points has not fallen below 10: no change took it from 10 or more")
    func fallsBelowNeedsAFall() throws {
        let (_, outcomes) = try Self.fold([Self.submit(Self.t)], Self.fallsBelow10)
        #expect(outcomes[0].fired.isEmpty)
    }

    @Test("T8 a manual minus taking the score from 15 to 9 fires")
    func fallsBelowAfterManualMinus() throws {
        let (_, outcomes) = try Self.fold([Self.open(Self.t), Self.minus(6, at: Self.t + 1)], Self.fallsBelow10)
        #expect(outcomes.map(\.fired) == [[], ["cooling/tag"]])
    }

    @Test("T8 T3 without rearm a falls_below trigger fires once, however often the score falls")
    func fallsBelowOnce() throws {
        let (_, outcomes) = try Self.fold(
            [Self.open(Self.t), Self.minus(6), Self.open(Self.t), Self.minus(6)], Self.fallsBelow10)
        #expect(outcomes.map(\.fired) == [[], ["cooling/tag"], [], []])
    }

    // MARK: T9

    static let rearmMQL = """
        actions: [{ id: open, type: email.open, delta: 10, repeatable: true }]
        triggers:
          - id: mql
            min_points: 10
            rearm: true
            events: [{ id: mail, type: email.send, email: welcome }, { id: tag, type: tags.modify, add: [mql] }]
        """

    @Test("T9 rearm: fires, not again while still reached, again after leaving and reaching 10 (/2, then /3)")
    func rearmFiresAgain() throws {
        let (state, outcomes) = try Self.fold(
            [
                Self.open(Self.t),  // 10: first firing
                Self.open(Self.t + 1),  // 20: still reached, nothing
                Self.minus(15),  // 5: left the condition
                Self.open(Self.t + 2),  // 15: second firing
                Self.minus(1),  // 14: still reached
                Self.open(Self.t + 3),  // 24: nothing
                Self.minus(20),  // 4
                Self.open(Self.t + 4),  // 14: third firing
            ], Self.rearmMQL)
        #expect(
            outcomes.map { $0.sideEffects.map(\.key) } == [
                ["c/mql/mail"], [], [], ["c/mql/mail/2"], [], [], [], ["c/mql/mail/3"],
            ])
        #expect(outcomes[3].fired == ["mql/mail/2", "mql/tag/2"])
        #expect(state.fired == ["mql/mail", "mql/tag", "mql/mail/3", "mql/tag/3"], "the first and the latest firing")
        #expect(state.rearms["mql"] == RearmState(firings: 3, armed: false))
    }

    @Test("T3 the same trigger without rearm fires once along the same path")
    func withoutRearmOnce() throws {
        let (_, outcomes) = try Self.fold(
            [Self.open(Self.t), Self.minus(15), Self.open(Self.t + 2)],
            Self.rearmMQL.replacingOccurrences(of: "rearm: true", with: "rearm: false"))
        #expect(outcomes.map { $0.sideEffects.map(\.key) } == [["c/mql/mail"], [], []])
    }

    @Test("T8 T9 a rearmed falls_below trigger fires at each fall, with the n-th key")
    func rearmFallsBelow() throws {
        let yaml = Self.fallsBelow10.replacingOccurrences(
            of: "events: [{ id: tag, type: tags.modify, add: [cold] }]",
            with: "rearm: true, events: [{ id: crm, type: integration.push, integration: crm }]")
        let (_, outcomes) = try Self.fold(
            // 15 → 9 (falls) → 8 → 23 (back above) → 9 (falls again).
            [Self.open(Self.t), Self.minus(6), Self.minus(1), Self.open(Self.t), Self.minus(14)], yaml)
        #expect(outcomes.map { $0.sideEffects.map(\.key) } == [[], ["c/cooling/crm"], [], [], ["c/cooling/crm/2"]])
    }

    @Test("T9 a trigger that fired before rearm was added counts that as its first firing (no duplicate key)")
    func rearmAddedLater() throws {
        let once = try RulesParser.parse(Self.rearmMQL.replacingOccurrences(of: "rearm: true", with: "rearm: false"))
        let rearm = try RulesParser.parse(Self.rearmMQL)
        var projection = Projection()
        let first = projection.apply(Self.open(Self.t), scorer: Scorer(rules: once))
        let scorer = Scorer(rules: rearm)
        let still = projection.apply(Self.open(Self.t + 1), scorer: scorer)
        projection.apply(Self.minus(15), scorer: scorer)
        let again = projection.apply(Self.open(Self.t + 2), scorer: scorer)
        #expect(first.sideEffects.map(\.key) == ["c/mql/mail"])
        #expect(still.sideEffects.isEmpty)
        #expect(again.sideEffects.map(\.key) == ["c/mql/mail/2"])
    }
}

@Suite("T4 T9 trigger_existing on a rearm trigger")
struct RearmExistingTests {
    @Test("T4 T9 a trigger_existing pass over a contact the trigger fired for before it had rearm changes nothing")
    func existingPassChangesNothing() throws {
        let once = try RulesParser.parse(
            CapsAndRearmTests.rearmMQL.replacingOccurrences(of: "rearm: true", with: "rearm: false"))
        let rules = try RulesParser.parse(
            CapsAndRearmTests.rearmMQL.replacingOccurrences(
                of: "rearm: true", with: "rearm: true\n    trigger_existing: true"))
        var projection = Projection()
        projection.apply(CapsAndRearmTests.open(CapsAndRearmTests.t), scorer: Scorer(rules: once))
        var state = try #require(projection.contacts["c"])
        let before = state
        let outcome = Scorer(rules: rules).fireExisting(
            rules.triggers, contact: "c", state: &state, at: CapsAndRearmTests.t)
        #expect(outcome.fired.isEmpty)
        #expect(state == before, "the pass stores only contacts that fired: the state must not change otherwise")
    }
}
