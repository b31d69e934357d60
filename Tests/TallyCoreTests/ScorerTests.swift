import TallyCore
import Testing

/// 2026-01-01T00:00:00Z in epoch milliseconds.
private let jan2026: Int64 = 1_767_225_600_000
private let hour: Int64 = 3_600_000

private func event(
    _ type: EventType, contact: String = "c1", at: Int64 = jan2026, id: String? = nil, item: String? = nil,
    url: String? = nil
) -> Event {
    Event(
        type: type, contact: contact, at: at, id: id, item: item ?? (type.requiresItem ? "item-1" : nil),
        url: url ?? (type.requiresURL ? "https://www.example.com/" : nil))
}

/// Applies the events in order to a fresh state and returns the state and all awards.
private func fold(
    _ events: [Event], _ actions: [PointAction], state: ContactState = ContactState()
) -> (
    ContactState, [Award]
) {
    let scorer = Scorer(rules: RuleSet(groups: ["content", "product"], actions: actions))
    var state = state
    var awards: [Award] = []
    for event in events { awards += scorer.apply(event, to: &state) }
    return (state, awards)
}

private func parsedRules(_ yaml: String) throws -> RuleSet {
    do {
        return try RulesParser.parse(yaml)
    } catch {
        Issue.record("rules did not parse: \(error)")
        throw error
    }
}

@Suite("Scorer: point actions S1–S6")
struct ScorerTests {
    // MARK: S1

    @Test("S1 an action applies only to events of its type", arguments: behaviourTypes)
    func typeMatch(type: EventType) {
        let action = PointAction(
            id: "a", type: type, delta: 3, repeatable: true, url: type == .urlHit ? URLPattern("*") : nil)
        for other in behaviourTypes {
            let (state, awards) = fold([event(other)], [action])
            if other == type {
                #expect(awards.map(\.action) == ["a"], "type \(other)")
                #expect(state.points == 3)
            } else {
                #expect(awards.isEmpty, "type \(other) must not match an action of type \(type)")
                #expect(state.points == 0)
            }
        }
    }

    @Test(
        "S1 an empty items list matches any item",
        arguments: behaviourTypes.filter(\.requiresItem))
    func emptyItems(type: EventType) {
        let action = PointAction(id: "a", type: type, delta: 1, repeatable: true, items: [])
        let (state, awards) = fold(
            [event(type, item: "x"), event(type, item: "y"), event(type, item: String(repeating: "z", count: 256))],
            [action])
        #expect(awards.count == 3)
        #expect(state.points == 3)
    }

    @Test("S1 an absent items list and an empty one both match any item (rules file)")
    func absentItemsInRulesFile() throws {
        let rules = try parsedRules(
            """
            actions:
              - { id: absent, type: form.submit, delta: 1, repeatable: true }
              - { id: empty, type: form.submit, delta: 10, repeatable: true, items: [] }
              - { id: null-items, type: form.submit, delta: 100, repeatable: true, items: }
            """)
        #expect(rules.actions.allSatisfy { $0.items.isEmpty })
        let scorer = Scorer(rules: rules)
        var state = ContactState()
        let awards = scorer.apply(event(.formSubmit, item: "anything"), to: &state)
        #expect(awards.map(\.action) == ["absent", "empty", "null-items"])
        #expect(state.points == 111)
    }

    @Test("S1 a given items list matches only the listed items", arguments: behaviourTypes.filter(\.requiresItem))
    func givenItems(type: EventType) {
        let action = PointAction(id: "a", type: type, delta: 5, repeatable: true, items: ["pricing", "roi"])
        let (state, awards) = fold(
            [
                event(type, item: "pricing"), event(type, item: "other"), event(type, item: "roi"),
                event(type, item: "Pricing"), event(type, item: "pricing-2"),
            ], [action])
        #expect(awards.count == 2, "only the listed ids, compared exactly")
        #expect(state.points == 10)
    }

    @Test("S1 an item not in the list does not match, and the action stays available")
    func otherItemDoesNotMatch() {
        let action = PointAction(id: "demo", type: .formSubmit, delta: 25, items: ["demo-request"])
        let (state, awards) = fold([event(.formSubmit, item: "newsletter-signup")], [action])
        #expect(awards.isEmpty)
        #expect(state.points == 0)
        #expect(state.awarded.isEmpty, "a non-matching event must not use up a non-repeatable action")
    }

    // MARK: S2

    @Test("S2 an unpublished action awards nothing")
    func unpublished() {
        let action = PointAction(
            id: "a", type: .emailOpen, delta: 5, repeatable: true, window: PublishWindow(published: false))
        let (state, awards) = fold([event(.emailOpen), event(.emailOpen)], [action])
        #expect(awards.isEmpty)
        #expect(state == ContactState())
    }

    @Test("S2 published: false wins over a window that contains the event")
    func unpublishedWithWindow() {
        let action = PointAction(
            id: "a", type: .emailOpen, delta: 5,
            window: PublishWindow(published: false, up: jan2026 - hour, down: jan2026 + hour))
        let (state, awards) = fold([event(.emailOpen, at: jan2026)], [action])
        #expect(awards.isEmpty)
        #expect(state.awarded.isEmpty)
    }

    @Test("S2 publish_up is inclusive")
    func publishUpInclusive() {
        let action = PointAction(
            id: "a", type: .emailOpen, delta: 1, repeatable: true, window: PublishWindow(up: jan2026))
        #expect(fold([event(.emailOpen, at: jan2026 - 1)], [action]).1.isEmpty)
        #expect(fold([event(.emailOpen, at: jan2026)], [action]).1.count == 1)
        #expect(fold([event(.emailOpen, at: jan2026 + 1)], [action]).1.count == 1)
    }

    @Test("S2 publish_down is exclusive")
    func publishDownExclusive() {
        let action = PointAction(
            id: "a", type: .emailOpen, delta: 1, repeatable: true, window: PublishWindow(down: jan2026))
        #expect(fold([event(.emailOpen, at: jan2026 - 1)], [action]).1.count == 1)
        #expect(fold([event(.emailOpen, at: jan2026)], [action]).1.isEmpty)
        #expect(fold([event(.emailOpen, at: jan2026 + 1)], [action]).1.isEmpty)
    }

    @Test("S2 the window [publish_up, publish_down) is judged on each event's at")
    func windowOnEventTime() {
        let action = PointAction(
            id: "a", type: .emailOpen, delta: 1, repeatable: true,
            window: PublishWindow(up: jan2026, down: jan2026 + 24 * hour))
        let times: [Int64] = [jan2026 - 1, jan2026, jan2026 + 12 * hour, jan2026 + 24 * hour - 1, jan2026 + 24 * hour]
        let (state, awards) = fold(times.map { event(.emailOpen, at: $0) }, [action])
        #expect(awards.count == 3)
        #expect(state.points == 3)
    }

    @Test("S2 time is the event's at, never the wall clock")
    func notWallClock() throws {
        // A window long past and one far in the future: whatever today's date is, only the events' `at` decides.
        let past = PointAction(
            id: "past", type: .emailOpen, delta: 1, repeatable: true,
            window: PublishWindow(up: 946_684_800_000, down: 946_771_200_000))  // 2000-01-01 .. 2000-01-02
        let future = PointAction(
            id: "future", type: .emailOpen, delta: 10, repeatable: true,
            window: PublishWindow(up: 32_503_680_000_000, down: 32_503_766_400_000))  // 3000-01-01 .. 3000-01-02
        let events = [
            event(.emailOpen, at: 946_684_800_000 + hour),  // inside the past window
            event(.emailOpen, at: 32_503_680_000_000 + hour),  // inside the future window
            event(.emailOpen, at: jan2026),  // in neither
        ]
        let (first, firstAwards) = fold(events, [past, future])
        #expect(firstAwards.map(\.action) == ["past", "future"])
        #expect(first.points == 11)
        // A replay gives the same result.
        let (second, secondAwards) = fold(events, [past, future])
        #expect(second == first)
        #expect(secondAwards == firstAwards)
    }

    @Test("S2 an event outside the window does not use up a non-repeatable action")
    func outsideWindowNotInLedger() {
        let action = PointAction(id: "a", type: .emailOpen, delta: 7, window: PublishWindow(up: jan2026))
        let (state, awards) = fold(
            [
                event(.emailOpen, at: jan2026 - hour), event(.emailOpen, at: jan2026),
                event(.emailOpen, at: jan2026 + 1),
            ],
            [action])
        #expect(awards.count == 1)
        #expect(state.points == 7)
        #expect(state.awarded == ["a"])
    }

    @Test("S2 publish_up and publish_down from the rules file gate on event time")
    func windowFromRulesFile() throws {
        let rules = try parsedRules(
            """
            actions:
              - id: spring
                type: email.open
                delta: 5
                repeatable: true
                publish_up: 2026-03-01T00:00:00Z
                publish_down: 2026-06-01T00:00:00+00:00
            """)
        let up: Int64 = 1_772_323_200_000
        let down: Int64 = 1_780_272_000_000
        let (state, awards) = fold(
            [up - 1, up, down - 1, down].map { event(.emailOpen, at: $0) }, rules.actions)
        #expect(awards.count == 2)
        #expect(state.points == 10)
    }

    // MARK: S3

    @Test("S3 a non-repeatable action is awarded at most once per contact")
    func nonRepeatableOnce() {
        let action = PointAction(id: "a", type: .assetDownload, delta: 10, repeatable: false)
        let (state, awards) = fold(
            [event(.assetDownload), event(.assetDownload), event(.assetDownload, item: "other")], [action])
        #expect(awards.count == 1)
        #expect(state.points == 10)
        #expect(state.awarded == ["a"])
    }

    @Test("S3 a non-repeatable action is awarded the first time its conditions hold")
    func nonRepeatableFirstTimeConditionsHold() {
        let action = PointAction(id: "a", type: .assetDownload, delta: 10, items: ["whitepaper"])
        let events = [
            event(.assetDownload, at: jan2026, item: "other"),
            event(.assetDownload, at: jan2026 + 1, item: "whitepaper"),
            event(.assetDownload, at: jan2026 + 2, item: "whitepaper"),
        ]
        let scorer = Scorer(rules: RuleSet(actions: [action]))
        var state = ContactState()
        #expect(scorer.apply(events[0], to: &state).isEmpty)
        #expect(scorer.apply(events[1], to: &state).map(\.action) == ["a"])
        #expect(scorer.apply(events[2], to: &state).isEmpty)
        #expect(state.points == 10)
    }

    @Test("S3 the once-only ledger is kept per action")
    func ledgerPerAction() {
        let actions = [
            PointAction(id: "a", type: .assetDownload, delta: 1),
            PointAction(id: "b", type: .assetDownload, delta: 2),
            PointAction(id: "c", type: .formSubmit, delta: 4),
        ]
        let (state, awards) = fold(
            [event(.assetDownload), event(.formSubmit), event(.assetDownload), event(.formSubmit)], actions)
        #expect(awards.map(\.action) == ["a", "b", "c"])
        #expect(state.points == 7)
        #expect(state.awarded == ["a", "b", "c"])
    }

    @Test("S3 once ever: a later rule set with the same action id does not award it again")
    func onceEverAcrossRuleVersions() {
        let v1 = PointAction(id: "a", type: .formSubmit, delta: 5)
        var v2 = v1
        v2.delta = 50
        v2.name = "renamed"
        let (afterV1, _) = fold([event(.formSubmit)], [v1])
        let (afterV2, awards) = fold([event(.formSubmit)], [v2], state: afterV1)
        #expect(awards.isEmpty)
        #expect(afterV2.points == 5)
    }

    @Test("S3 a repeatable action is awarded on every event for which it holds")
    func repeatableEveryTime() {
        let action = PointAction(id: "a", type: .emailOpen, delta: 2, repeatable: true)
        let (state, awards) = fold(Array(repeating: event(.emailOpen), count: 5), [action])
        #expect(awards.count == 5)
        #expect(awards.map(\.scoreAfter) == [2, 4, 6, 8, 10])
        #expect(state.points == 10)
        #expect(state.awarded.isEmpty, "repeatable actions do not enter the once-only ledger")
    }

    @Test("S3 the once-only ledger is independent per contact")
    func ledgerPerContact() {
        let scorer = Scorer(rules: RuleSet(actions: [PointAction(id: "a", type: .formSubmit, delta: 25)]))
        var projection = Projection()
        var totals: [Int64] = []
        for contact in ["alice", "bob", "alice", "bob", "carol"] {
            projection.apply(event(.formSubmit, contact: contact), scorer: scorer)
            totals.append(projection.contacts.values.map(\.points).reduce(0, +))
        }
        #expect(totals == [25, 50, 50, 50, 75], "only each contact's first submit is awarded")
        #expect(projection.contacts["alice"]?.points == 25)
        #expect(projection.contacts["bob"]?.points == 25)
        #expect(projection.contacts["carol"]?.points == 25)
        #expect(projection.contacts["alice"]?.awarded == ["a"])
    }

    // MARK: S4

    @Test("S4 an award without a group adds delta to the main score")
    func mainScore() throws {
        let (state, awards) = fold([event(.pageHit)], [PointAction(id: "a", type: .pageHit, delta: 3)])
        let award = try #require(awards.first)
        #expect(award == Award(action: "a", group: nil, delta: 3, scoreAfter: 3, reason: award.reason))
        #expect(state.points == 3)
        #expect(state.groups.isEmpty)
    }

    @Test("S4 a group award changes only the group's score")
    func groupScore() throws {
        let actions = [
            PointAction(id: "main", type: .emailSend, delta: 1, repeatable: true),
            PointAction(id: "content", type: .emailSend, delta: 4, repeatable: true, group: "content"),
        ]
        let (state, awards) = fold([event(.emailSend), event(.emailSend)], actions)
        #expect(state.points == 2)
        #expect(state.groups == ["content": 8])
        #expect(state.score(group: "content") == 8)
        #expect(state.score(group: "product") == 0, "a group never awarded to scores 0")
        #expect(state.score(group: nil) == 2)
        let groupAwards = awards.filter { $0.action == "content" }
        #expect(groupAwards.map(\.group) == ["content", "content"])
        #expect(groupAwards.map(\.scoreAfter) == [4, 8], "scoreAfter is the group's score")
    }

    @Test("S4 a group-only rule set leaves the main score untouched")
    func groupOnly() {
        let (state, _) = fold(
            [event(.formSubmit)], [PointAction(id: "a", type: .formSubmit, delta: -9, group: "product")])
        #expect(state.points == 0)
        #expect(state.groups == ["product": -9])
    }

    @Test("S4 negative deltas lower the score, and scores may go negative")
    func negativeDeltas() {
        let actions = [
            PointAction(id: "up", type: .emailOpen, delta: 3, repeatable: true),
            PointAction(id: "down", type: .formSubmit, delta: -5, repeatable: true),
        ]
        let (state, awards) = fold([event(.emailOpen), event(.formSubmit), event(.formSubmit)], actions)
        #expect(awards.map(\.delta) == [3, -5, -5])
        #expect(awards.map(\.scoreAfter) == [3, -2, -7])
        #expect(state.points == -7)
    }

    @Test("S4 scores are 64-bit: they pass the 32-bit range")
    func beyond32Bits() {
        let action = PointAction(id: "a", type: .emailOpen, delta: Int64(Int32.max), repeatable: true)
        let (state, _) = fold(Array(repeating: event(.emailOpen), count: 4), [action])
        #expect(state.points == 4 * Int64(Int32.max))
    }

    @Test("S4 the main score saturates at Int64.max and Int64.min")
    func saturationThroughScorer() throws {
        let up = PointAction(id: "up", type: .emailOpen, delta: 5, repeatable: true)
        let (high, highAwards) = fold([event(.emailOpen)], [up], state: ContactState(points: Int64.max - 2))
        #expect(high.points == Int64.max)
        #expect(highAwards.map(\.delta) == [2], "the award records the change actually applied")
        #expect(highAwards.map(\.scoreAfter) == [Int64.max])

        let down = PointAction(id: "down", type: .emailOpen, delta: -5, repeatable: true, group: "content")
        let (low, lowAwards) = fold(
            [event(.emailOpen), event(.emailOpen)], [down], state: ContactState(groups: ["content": Int64.min + 3]))
        #expect(low.groups["content"] == Int64.min)
        #expect(lowAwards.map(\.delta) == [-3, 0])
        #expect(low.points == 0)
    }

    @Test("S4 ContactState.add saturates at the 64-bit bounds and returns the change applied")
    func contactStateAdd() {
        var state = ContactState()
        #expect(state.add(10, group: nil) == 10)
        #expect(state.add(-25, group: nil) == -25)
        #expect(state.points == -15)

        state.points = Int64.max - 1
        #expect(state.add(Int64.max, group: nil) == 1)
        #expect(state.points == Int64.max)
        #expect(state.add(1, group: nil) == 0)
        #expect(state.points == Int64.max)
        #expect(state.add(Int64.min, group: nil) == Int64.min)
        #expect(state.points == -1)

        state.points = Int64.min + 1
        #expect(state.add(-2, group: nil) == -1)
        #expect(state.points == Int64.min)
        #expect(state.add(Int64.min, group: nil) == 0)
        #expect(state.points == Int64.min)
        #expect(state.add(Int64.max, group: nil) == Int64.max)
        #expect(state.points == -1)

        #expect(state.add(Int64.min, group: "g") == Int64.min)
        #expect(state.add(-1, group: "g") == 0)
        #expect(state.groups == ["g": Int64.min])
        #expect(state.add(Int64.max, group: "h") == Int64.max)
        #expect(state.add(Int64.max, group: "h") == 0)
        #expect(state.groups == ["g": Int64.min, "h": Int64.max])
        #expect(state.points == -1, "group additions leave the main score alone")
    }

    // MARK: S5

    @Test("S5 several actions matching one event all apply, in file order")
    func severalActionsInFileOrder() {
        let actions = [
            PointAction(id: "c-first", type: .formSubmit, delta: 1, repeatable: true),
            PointAction(id: "other-type", type: .emailOpen, delta: 1000, repeatable: true),
            PointAction(id: "a-second", type: .formSubmit, delta: 10, repeatable: true, group: "product"),
            PointAction(id: "b-third", type: .formSubmit, delta: -100),
            PointAction(id: "0-fourth", type: .formSubmit, delta: 1_000, items: ["demo"]),
        ]
        let (state, awards) = fold([event(.formSubmit, item: "demo")], actions)
        #expect(awards.map(\.action) == ["c-first", "a-second", "b-third", "0-fourth"])
        #expect(awards.map(\.scoreAfter) == [1, 10, -99, 901])
        #expect(state.points == 901)
        #expect(state.groups == ["product": 10])
    }

    @Test("S5 each matching action is judged on its own")
    func judgedOnItsOwn() {
        let actions = [
            PointAction(id: "any", type: .assetDownload, delta: 1, repeatable: true),
            PointAction(id: "listed", type: .assetDownload, delta: 2, repeatable: true, items: ["other"]),
            PointAction(
                id: "unpublished", type: .assetDownload, delta: 4, repeatable: true,
                window: PublishWindow(published: false)),
            PointAction(id: "once", type: .assetDownload, delta: 8),
            PointAction(id: "zero", type: .assetDownload, delta: 0),
            PointAction(id: "last", type: .assetDownload, delta: 16, repeatable: true),
        ]
        let (state, awards) = fold([event(.assetDownload), event(.assetDownload)], actions)
        #expect(awards.map(\.action) == ["any", "once", "last", "any", "last"])
        #expect(state.points == 1 + 8 + 16 + 1 + 16)
    }

    @Test("S5 the file order of the rules file is the award order")
    func fileOrderFromRulesFile() throws {
        let rules = try parsedRules(
            """
            actions:
              - { id: zeta, type: page.hit, delta: 1, repeatable: true }
              - { id: alpha, type: url.hit, delta: 5, url: "*" }
              - { id: mid, type: page.hit, delta: 2, repeatable: true }
              - { id: beta, type: page.hit, delta: 3, repeatable: true }
            """)
        let (_, awards) = fold([event(.pageHit)], rules.actions)
        #expect(awards.map(\.action) == ["zeta", "mid", "beta"])
    }

    // MARK: S6

    @Test("S6 folding the same events in the same order gives the same state")
    func determinism() {
        let rules = RuleSet(
            groups: ["content", "product"],
            actions: [
                PointAction(id: "dl", type: .assetDownload, delta: 10, items: ["a", "b"]),
                PointAction(id: "send", type: .emailSend, delta: 1, repeatable: true, group: "content"),
                PointAction(id: "open", type: .emailOpen, delta: -3, repeatable: true),
                PointAction(
                    id: "form", type: .formSubmit, delta: 25, group: "product",
                    window: PublishWindow(up: jan2026, down: jan2026 + 48 * hour)),
                PointAction(id: "page", type: .pageHit, delta: Int64(Int32.max), repeatable: true),
                PointAction(
                    id: "url", type: .urlHit, delta: 5, repeatable: true, url: URLPattern("https://x.com/help*")),
                PointAction(id: "zero", type: .emailOpen, delta: 0),
            ])
        let scorer = Scorer(rules: rules)
        var random = SplitMix64(seed: 0x5EED_0006)
        let contacts = ["alice", "bob", "carol", "dave"]
        let items = ["a", "b", "c"]
        let urls = ["https://x.com/help", "https://X.com/help/faq?u=1", "https://x.com/pricing", "https://y.com/help"]
        var events: [Event] = []
        for _ in 0..<2_000 {
            let type = random.pick(behaviourTypes)
            events.append(
                Event(
                    type: type, contact: random.pick(contacts), at: jan2026 + random.int64(in: -hour...(72 * hour)),
                    item: type.requiresItem ? random.pick(items) : nil,
                    url: type.requiresURL ? random.pick(urls) : nil))
        }

        func project() -> Projection {
            var projection = Projection()
            for event in events { projection.apply(event, scorer: scorer) }
            return projection
        }
        func score() -> ([ByteString: ContactState], [[Award]]) {
            var states: [ByteString: ContactState] = [:]
            let awards = events.map { scorer.apply($0, to: &states[ByteString($0.contact), default: ContactState()]) }
            return (states, awards)
        }
        let first = project()
        let second = project()
        #expect(first == second)
        #expect(Set(first.contacts.keys) == Set(contacts.map { ByteString($0) }))
        let (states, awards) = score()
        let (statesAgain, awardsAgain) = score()
        #expect(states == statesAgain)
        #expect(awards == awardsAgain)
        #expect(awards.contains { !$0.isEmpty }, "the generated log must exercise the rules")
        #expect(first.contacts == states, "Projection folds each event into its contact with the scorer")

        // Each contact's state depends only on its own events: contacts do not interact.
        for contact in contacts {
            let (state, _) = fold(events.filter { $0.contact == contact }, rules.actions)
            #expect(first.contacts[ByteString(contact)] == state, "contact \(contact)")
        }
    }

    @Test("S6 events are applied in log order: awards follow the order given")
    func logOrder() {
        let actions = [
            PointAction(id: "up", type: .emailOpen, delta: 5, repeatable: true),
            PointAction(id: "down", type: .formSubmit, delta: -5, repeatable: true),
        ]
        let start = ContactState(points: Int64.max - 1)
        // With saturation the order changes the outcome, so a fold that reordered events would be caught.
        let (forward, forwardAwards) = fold([event(.emailOpen), event(.formSubmit)], actions, state: start)
        let (backward, backwardAwards) = fold([event(.formSubmit), event(.emailOpen)], actions, state: start)
        #expect(forwardAwards.map(\.action) == ["up", "down"])
        #expect(forwardAwards.map(\.scoreAfter) == [Int64.max, Int64.max - 5])
        #expect(forward.points == Int64.max - 5)
        #expect(backwardAwards.map(\.action) == ["down", "up"])
        #expect(backwardAwards.map(\.scoreAfter) == [Int64.max - 6, Int64.max - 1])
        #expect(backward.points == Int64.max - 1)
    }

    @Test("S6 Projection creates a contact on its first event and applies events to that contact only")
    func projectionPerContact() {
        let scorer = Scorer(
            rules: RuleSet(actions: [PointAction(id: "a", type: .emailOpen, delta: 2, repeatable: true)]))
        var projection = Projection()
        projection.apply(event(.formSubmit, contact: "quiet"), scorer: scorer)
        projection.apply(event(.emailOpen, contact: "busy"), scorer: scorer)
        projection.apply(event(.emailOpen, contact: "busy"), scorer: scorer)
        #expect(projection.contacts["quiet"] == ContactState())
        #expect(projection.contacts["busy"]?.points == 4)
        #expect(projection.contacts.count == 2)
    }

    // MARK: delta 0

    @Test("S4 delta 0 awards nothing and does not enter the once-only ledger")
    func deltaZero() {
        let zero = PointAction(id: "a", type: .formSubmit, delta: 0)
        let zeroRepeatable = PointAction(id: "b", type: .formSubmit, delta: 0, repeatable: true)
        let (state, awards) = fold([event(.formSubmit), event(.formSubmit)], [zero, zeroRepeatable])
        #expect(awards.isEmpty)
        #expect(state == ContactState())

        // When a later rules version gives the action points, it is still available to the contact.
        var paying = zero
        paying.delta = 5
        let (after, laterAwards) = fold([event(.formSubmit)], [paying], state: state)
        #expect(laterAwards.map(\.action) == ["a"])
        #expect(after.points == 5)
    }

    // MARK: U1 through the scorer

    @Test("U1 a url.hit action awards for URLs that match its pattern")
    func urlHitPattern() {
        let action = PointAction(
            id: "pricing", type: .urlHit, delta: 5, repeatable: true,
            url: URLPattern("https://www.example.com/pricing*"))
        let urls = [
            "https://www.example.com/pricing",  // yes
            "https://WWW.Example.com/Pricing/enterprise?utm=1#top",  // yes: case, query, fragment
            "https://www.example.com/pricing/",  // yes: trailing slash
            "https://www.example.com/about",  // no
            "http://www.example.com/pricing",  // no: other scheme
            "https://www.example.com/?page=pricing",  // no: query dropped
        ]
        let (state, awards) = fold(urls.map { event(.urlHit, url: $0) }, [action])
        #expect(awards.count == 3)
        #expect(state.points == 15)
    }

    @Test("U1 a non-repeatable url.hit action is awarded once, on the first matching hit")
    func urlHitOnce() {
        let action = PointAction(id: "help", type: .urlHit, delta: 5, url: URLPattern("https://x.com/help*"))
        let (state, awards) = fold(
            [
                event(.urlHit, url: "https://x.com/pricing"), event(.urlHit, url: "https://x.com/help/a?utm=1"),
                event(.urlHit, url: "https://x.com/help/b"),
            ], [action])
        #expect(awards.count == 1)
        #expect(awards.first?.delta == 5)
        #expect(state.points == 5)
        #expect(state.awarded == ["help"])
    }

    @Test("U1 a url.hit action does not apply to item events, nor item actions to url.hit")
    func urlAndItemsSeparate() {
        let actions = [
            PointAction(id: "url", type: .urlHit, delta: 1, repeatable: true, url: URLPattern("*")),
            PointAction(id: "page", type: .pageHit, delta: 10, repeatable: true),
        ]
        let (state, awards) = fold(
            [event(.pageHit, item: "https://x.com/"), event(.urlHit, item: "landing", url: "https://x.com/")], actions)
        #expect(awards.map(\.action) == ["page", "url"])
        #expect(state.points == 11)
    }
}
