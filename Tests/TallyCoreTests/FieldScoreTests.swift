import TallyCore
import Testing

/// F1 (fields on `contact.update`) and F2 (`contact.field` fit scores) in the fold, each operator at its boundary.
@Suite("Fields F1 and fit scores F2 in the fold")
struct FieldScoreTests {
    static let t: Int64 = 1_767_225_600_000

    static func update(_ fields: [String: FieldValue?], at: Int64 = t, email: String? = nil) -> Event {
        Event(
            type: .contactUpdate, contact: "c", at: at, email: email,
            fields: fields.keys.sorted().map { FieldUpdate(name: $0, value: fields[$0] ?? nil) })
    }

    /// Folds `events` through one projection; returns the contact's state and every outcome.
    static func fold(_ events: [Event], _ yaml: String) throws -> (ContactState, [FoldOutcome]) {
        let scorer = Scorer(rules: try RulesParser.parse(yaml))
        var projection = Projection()
        let outcomes = events.map { projection.apply($0, scorer: scorer) }
        return (projection.contacts["c"] ?? ContactState(), outcomes)
    }

    /// The one action `condition` (a YAML flow-map fragment) with delta 50.
    static func rules(_ condition: String) -> String {
        "actions: [{ id: fit, type: contact.field, delta: 50, \(condition) }]"
    }

    /// Whether the condition holds for a contact whose field `size` (or `title`) is `value`.
    static func holds(_ condition: String, _ value: FieldValue, field: String = "size") throws -> Bool {
        let (state, _) = try fold([update([field: value])], rules(condition))
        return state.points == 50 && state.fieldAwards["fit"] != nil
    }

    @Test("F1 an update sets fields, keeps the ones it does not name, and null removes one")
    func fieldsSetKeptRemoved() throws {
        let (state, _) = try Self.fold(
            [
                Self.update(["size": .number(500), "industry": .string("retail")]),
                Self.update(["title": .string("CTO")], email: "a@example.com"),
                Self.update(["industry": nil]),
            ], "")
        #expect(state.fields == ["size": .number(500), "title": .string("CTO")])
        #expect(state.email == "a@example.com")
    }

    @Test("F1 the fold keeps a contact at 100 fields whatever the log holds")
    func fieldLimitInTheFold() throws {
        let many = Dictionary(uniqueKeysWithValues: (0..<100).map { ("f\($0)", FieldValue?.some(.number(1))) })
        let (state, _) = try Self.fold(
            [Self.update(many), Self.update(["extra": .string("x"), "f0": .number(2)])], "")
        #expect(state.fields.count == 100)
        #expect(state.fields["extra"] == nil)
        #expect(state.fields["f0"] == .number(2))
    }

    @Test("F2 gte and lte hold at their bound and not one step past it; a string never compares")
    func gteLteBoundaries() throws {
        #expect(try Self.holds("field: size, gte: 500", .number(500)))
        #expect(try !Self.holds("field: size, gte: 500", .number(499.5)))
        #expect(try Self.holds("field: size, lte: 10", .number(10)))
        #expect(try !Self.holds("field: size, lte: 10", .number(10.25)))
        #expect(try !Self.holds("field: size, gte: 500", .string("900")))
    }

    @Test("F2 equals compares numbers numerically and strings as bytes, never a string with a number")
    func equalsBoundaries() throws {
        #expect(try Self.holds("field: size, equals: 500", .number(500)))
        #expect(try Self.holds("field: size, equals: 5e2", .number(500)))
        #expect(try !Self.holds("field: size, equals: 500", .number(501)))
        #expect(try !Self.holds("field: size, equals: 500", .string("500")))
        #expect(try Self.holds("field: size, equals: \"500\"", .string("500")))
        #expect(try !Self.holds("field: title, equals: CTO", .string("cto"), field: "title"))
        #expect(try Self.holds("field: title, equals: CTO", .string("CTO"), field: "title"))
    }

    @Test("F2 in holds for a listed value and not for another")
    func inBoundaries() throws {
        #expect(try Self.holds("field: title, in: [CEO, CTO, 7]", .string("CTO"), field: "title"))
        #expect(try Self.holds("field: title, in: [CEO, CTO, 7]", .number(7), field: "title"))
        #expect(try !Self.holds("field: title, in: [CEO, CTO, 7]", .string("CFO"), field: "title"))
    }

    @Test("F2 contains holds for a substring (case-sensitive) and not for a number")
    func containsBoundaries() throws {
        #expect(try Self.holds("field: title, contains: Chief", .string("Chief Technology Officer"), field: "title"))
        #expect(try !Self.holds("field: title, contains: Chief", .string("chief of staff"), field: "title"))
        #expect(try !Self.holds("field: title, contains: \"5\"", .number(5), field: "title"))
    }

    @Test("F2 exists holds for any value and not for a contact without the field")
    func existsBoundaries() throws {
        #expect(try Self.holds("field: size, exists: true", .string("")))
        #expect(try !Self.holds("field: size, exists: true", .number(1), field: "other"))
    }

    @Test("F2 awarded when an update makes it true, reversed (kind field) when a later one makes it false")
    func awardThenReversal() throws {
        let (state, outcomes) = try Self.fold(
            [
                Self.update(["size": .number(100)]),
                Self.update(["size": .number(800)]),
                Self.update(["size": .number(900)]),
                Self.update(["size": .number(20)], at: Self.t + 1),
            ], Self.rules("field: size, gte: 500"))
        #expect(outcomes.map { $0.awards.map(\.delta) } == [[], [50], [], [-50]])
        let reversal = try #require(outcomes[3].awards.first)
        #expect(reversal.kind == .field)
        #expect(reversal.action == "fit")
        #expect(reversal.reason == "no longer size ≥ 500: size is 20; award of 50 reversed")
        #expect(outcomes[1].awards.first?.reason == "size ≥ 500: size is 800")
        #expect(state.points == 0)
        #expect(state.fieldAwards.isEmpty)
    }

    @Test("F2 removing the field reverses the award; setting it again awards again")
    func removalReversesAndReawards() throws {
        let (state, outcomes) = try Self.fold(
            [
                Self.update(["size": .number(800)]),
                Self.update(["size": nil]),
                Self.update(["size": .number(600)]),
            ], Self.rules("field: size, gte: 500"))
        #expect(outcomes.map { $0.awards.map(\.delta) } == [[50], [-50], [50]])
        #expect(outcomes[1].awards.first?.reason == "no longer size ≥ 500: size is not set; award of 50 reversed")
        #expect(state.points == 50)
    }

    @Test("F2 a reversal takes back what was awarded, to the group it went to, even if the rules changed since")
    func reversalUsesTheRecordedAward() throws {
        var projection = Projection()
        let first = Scorer(
            rules: try RulesParser.parse(
                "groups: [fit]\nactions: [{ id: big, type: contact.field, delta: 30, group: fit, field: size, gte: 500 }]"
            ))
        let second = Scorer(
            rules: try RulesParser.parse(
                "groups: [fit]\nactions: [{ id: big, type: contact.field, delta: 99, field: size, gte: 500 }]"))
        _ = projection.apply(Self.update(["size": .number(800)]), scorer: first)
        let outcome = projection.apply(Self.update(["size": .number(1)]), scorer: second)
        #expect(outcome.awards.map(\.delta) == [-30])
        #expect(outcome.awards.first?.group == "fit")
        #expect(projection.contacts["c"]?.groups["fit"] == 0)
        #expect(projection.contacts["c"]?.points == 0)
    }

    @Test("F2 a new action is judged at the contact's next update, even one that changes no field")
    func newActionAtNextUpdate() throws {
        var projection = Projection()
        _ = projection.apply(Self.update(["size": .number(800)]), scorer: Scorer(rules: RuleSet()))
        let scorer = Scorer(rules: try RulesParser.parse(Self.rules("field: size, gte: 500")))
        let outcome = projection.apply(Self.update([:], email: "a@example.com"), scorer: scorer)
        #expect(outcome.awards.map(\.delta) == [50])
        #expect(projection.contacts["c"]?.points == 50)
    }

    @Test("F2 T2 a fit score's award is followed by the triggers, like any score change")
    func triggersFollowTheAward() throws {
        let (state, outcomes) = try Self.fold(
            [Self.update(["size": .number(800)])],
            Self.rules("field: size, gte: 500")
                + "\ntriggers: [{ id: mql, min_points: 50, events: [{ id: t, type: tags.modify, add: [fit] }] }]")
        #expect(state.tags == ["fit"])
        #expect(outcomes[0].awards.count == 1)
    }

    @Test("F2 S2 an action outside its publication window awards nothing")
    func windowApplies() throws {
        let (state, _) = try Self.fold(
            [Self.update(["size": .number(800)])],
            Self.rules("field: size, gte: 500, publish_up: 2030-01-01T00:00:00Z"))
        #expect(state.points == 0)
    }
}
