import TallyCore
import Testing

@Suite("Triggers T1–T3, T5 in the fold")
struct TriggerTests {
    static let at: Int64 = 1_767_225_600_000

    static func rules(_ yaml: String) throws -> RuleSet { try RulesParser.parse(yaml) }

    static func open(_ contact: String = "c", item: String = "x", at: Int64 = at) -> Event {
        Event(type: .emailOpen, contact: contact, at: at, item: item)
    }

    /// Folds the events through a fresh projection and returns it with every outcome.
    static func fold(
        _ events: [Event], _ rules: RuleSet, into projection: Projection = Projection()
    ) -> (
        Projection, [FoldOutcome]
    ) {
        let scorer = Scorer(rules: rules)
        var projection = projection
        let outcomes = events.map { projection.apply($0, scorer: scorer) }
        return (projection, outcomes)
    }

    static let tagEvents = "events: [{ id: tag, type: tags.modify, add: [hot] }]"

    @Test("T1 T2 a contact created with 5 points reaches the 5-point trigger and not the 6-point one")
    func createdWithFivePoints() throws {
        let rules = try Self.rules(
            """
            actions: [{ id: open, type: email.open, delta: 5 }]
            triggers:
              - { id: five, min_points: 5, \(Self.tagEvents) }
              - { id: six, min_points: 6, \(Self.tagEvents) }
            """)
        let (projection, outcomes) = Self.fold([Self.open()], rules)
        #expect(outcomes[0].fired == ["five/tag"])
        #expect(projection.contacts["c"]?.fired == ["five/tag"])
        #expect(projection.contacts["c"]?.tags == ["hot"])
    }

    @Test("T1 a group trigger watches the group score only")
    func groupTrigger() throws {
        let rules = try Self.rules(
            """
            groups: [product]
            actions:
              - { id: main, type: email.open, delta: 50, repeatable: true }
              - { id: demo, type: form.submit, delta: 10, group: product, repeatable: true }
            triggers: [{ id: product-qualified, min_points: 10, group: product, \(Self.tagEvents) }]
            """)
        let (_, outcomes) = Self.fold(
            [Self.open(), Event(type: .formSubmit, contact: "c", at: Self.at, item: "demo")], rules)
        #expect(outcomes[0].fired.isEmpty, "50 main points do not reach a group trigger")
        #expect(outcomes[1].fired == ["product-qualified/tag"])
    }

    @Test("T3 falling below and rising again does not fire again")
    func firesOnce() throws {
        let rules = try Self.rules(
            """
            actions:
              - { id: up, type: email.open, delta: 10, repeatable: true }
              - { id: down, type: email.send, delta: -10, repeatable: true }
            triggers: [{ id: ten, min_points: 10, events: [{ id: crm, type: integration.push, integration: crm }] }]
            """)
        let events = [
            Self.open(), Event(type: .emailSend, contact: "c", at: Self.at, item: "n"), Self.open(), Self.open(),
        ]
        let (_, outcomes) = Self.fold(events, rules)
        #expect(outcomes.map(\.fired) == [["ten/crm"], [], [], []])
        #expect(
            outcomes[0].sideEffects == [
                SideEffect(contact: "c", trigger: "ten", event: "crm", kind: .integrationPush(integration: "crm"))
            ])
        #expect(outcomes[0].sideEffects.first?.key == "c/ten/crm")
    }

    @Test("T2 a move that stays below zero is evaluated: -10 then -4 reaches a -5 trigger")
    func negativeScores() throws {
        let rules = try Self.rules(
            """
            actions:
              - { id: bounce, type: email.send, delta: -10 }
              - { id: open, type: email.open, delta: 6 }
            triggers: [{ id: minus-five, min_points: -5, \(Self.tagEvents) }]
            """)
        let (projection, outcomes) = Self.fold(
            [Event(type: .emailSend, contact: "c", at: Self.at, item: "n"), Self.open()], rules)
        #expect(outcomes[0].fired.isEmpty)
        #expect(outcomes[1].fired == ["minus-five/tag"])
        #expect(projection.contacts["c"]?.points == -4)
    }

    @Test("T2 a min_points 0 trigger fires for every new contact whose first event leaves it at 0 or more")
    func zeroTriggerOnFirstSeen() throws {
        let rules = try Self.rules(
            """
            actions: [{ id: bounce, type: email.send, delta: -1 }]
            triggers: [{ id: everyone, min_points: 0, \(Self.tagEvents) }]
            """)
        let (projection, outcomes) = Self.fold(
            [
                Self.open("a"), Self.open("a"), Event(type: .emailSend, contact: "b", at: Self.at, item: "n"),
                Event(type: .contactUpdate, contact: "d", at: Self.at, email: "d@example.com"),
            ], rules)
        #expect(outcomes.map(\.fired) == [["everyone/tag"], [], [], ["everyone/tag"]])
        #expect(projection.contacts["b"]?.fired.isEmpty == true)
        #expect(projection.contacts["d"]?.email == "d@example.com")
    }

    @Test("T3 a trigger event added later fires at the contact's next evaluation; events fire in file order")
    func addedEventFiresLater() throws {
        let before = try Self.rules(
            """
            actions: [{ id: open, type: email.open, delta: 10, repeatable: true }]
            triggers: [{ id: mql, min_points: 10, events: [{ id: a, type: tags.modify, add: [a] }] }]
            """)
        let after = try Self.rules(
            """
            actions: [{ id: open, type: email.open, delta: 10, repeatable: true }]
            triggers:
              - id: mql
                min_points: 10
                events:
                  - { id: a, type: tags.modify, add: [a] }
                  - { id: b, type: segments.modify, add: [s1, s2], remove: [s0] }
                  - { id: c, type: campaigns.modify, add: [nurture], remove: [onboarding] }
                  - { id: d, type: email.send, email: welcome }
            """)
        let (first, _) = Self.fold([Self.open()], before)
        let (second, outcomes) = Self.fold([Self.open()], after, into: first)
        #expect(outcomes[0].fired == ["mql/b", "mql/c", "mql/d"])
        #expect(outcomes[0].sideEffects.map(\.key) == ["c/mql/d"])
        let state = second.contacts["c"]
        #expect(state?.tags == ["a"])
        #expect(state?.segments == ["s1", "s2"])
        #expect(state?.campaigns == ["nurture"])
    }

    @Test("T1 a trigger is reached only while published, judged on the event's at")
    func publishWindow() throws {
        let rules = try Self.rules(
            """
            actions: [{ id: open, type: email.open, delta: 10, repeatable: true }]
            triggers:
              - { id: later, min_points: 10, publish_up: 2026-02-01T00:00:00Z, \(Self.tagEvents) }
              - { id: off, min_points: 10, published: false, \(Self.tagEvents) }
            """)
        let february: Int64 = 1_769_904_000_000
        let (_, outcomes) = Self.fold([Self.open(), Self.open(at: february)], rules)
        #expect(outcomes.map(\.fired) == [[], ["later/tag"]])
    }

    @Test("T5 tag changes apply in firing order: a later remove wins over an earlier add")
    func tagOrder() throws {
        let rules = try Self.rules(
            """
            actions: [{ id: open, type: email.open, delta: 10, repeatable: true }]
            triggers:
              - { id: t1, min_points: 10, events: [{ id: x, type: tags.modify, add: [cold, new] }] }
              - { id: t2, min_points: 20, events: [{ id: y, type: tags.modify, add: [hot], remove: [cold] }] }
            """)
        let (projection, _) = Self.fold([Self.open(), Self.open()], rules)
        #expect(projection.contacts["c"]?.tags == ["new", "hot"])
    }
}
