import TallyCore
import Testing

@Suite("RulesParser: expires_after (D2) and decay (D3)")
struct RulesParserAgingTests {
    @Test("D2 D3 expires_after and decay parse into their schedules")
    func keysParse() throws {
        let rules = try RulesParser.parse(
            """
            actions:
              - { id: guide, type: asset.download, delta: 10, expires_after: 30d }
              - id: webinar
                type: form.submit
                delta: 40
                repeatable: true
                decay: [{ after: 30d, keep: 50 }, { after: 90d, keep: 0 }]
              - { id: plain, type: email.open, delta: 1 }
            """)
        #expect(rules.actions[0].aging == .expiry(after: 30 * 86_400_000))
        #expect(
            rules.actions[1].aging
                == Aging(
                    kind: .decay,
                    steps: [.init(after: 30 * 86_400_000, keep: 50), .init(after: 90 * 86_400_000, keep: 0)]))
        #expect(rules.actions[2].aging == nil)
    }

    @Test("D3 an action has decay or expires_after, not both")
    func notBoth() {
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                expires_after: 1d
                decay: [{ after: 2d, keep: 10 }]
            """, line: 6, containing: "\"decay\" or \"expires_after\", not both")
    }

    @Test("D3 decay steps come later and keep less, each on its own line")
    func stepOrder() {
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                decay:
                  - { after: 30d, keep: 50 }
                  - { after: 10d, keep: 20 }
            """, line: 7, containing: "later and keep less")
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                decay:
                  - { after: 30d, keep: 50 }
                  - { after: 60d, keep: 50 }
            """, line: 7, containing: "later and keep less")
    }

    @Test("D3 a step's keep is a percentage and its after a duration; unknown keys are named")
    func stepValues() {
        expectOneIssue(
            "actions: [{ id: a, type: email.open, delta: 1, decay: [{ after: 30d, keep: 150 }] }]", line: 1,
            containing: "\"keep\" must be within 0...100")
        expectOneIssue(
            "actions: [{ id: a, type: email.open, delta: 1, decay: [{ after: soon, keep: 50 }] }]", line: 1,
            containing: "\"after\" must be a positive duration")
        expectOneIssue(
            "actions: [{ id: a, type: email.open, delta: 1, decay: [{ keep: 50 }] }]", line: 1,
            containing: "\"after\" is required")
        expectOneIssue(
            "actions: [{ id: a, type: email.open, delta: 1, decay: [{ after: 1d, keep: 5, keeps: 4 }] }]", line: 1,
            containing: "keeps")
        expectOneIssue(
            "actions: [{ id: a, type: email.open, delta: 1, decay: [] }]", line: 1, containing: "must be a list of 1–16"
        )
        expectOneIssue(
            "actions: [{ id: a, type: email.open, delta: 1, expires_after: 0s }]", line: 1,
            containing: "\"expires_after\" must be a positive duration")
    }

    @Test("D2 a fit score cannot expire: it lasts while its condition holds")
    func notOnFitScores() {
        expectOneIssue(
            """
            actions:
              - id: big
                type: contact.field
                field: size
                gte: 500
                delta: 50
                expires_after: 30d
            """, line: 7, containing: "does not apply to contact.field actions")
    }
}
