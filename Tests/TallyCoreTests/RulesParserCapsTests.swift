import TallyCore
import Testing

@Suite("RulesParser: caps (C1, C2), falls_below (T8) and rearm (T9)")
struct RulesParserCapsTests {
    @Test("C1 C2 T8 T9 every new key parses")
    func newKeysParse() throws {
        let rules = try RulesParser.parse(
            """
            actions:
              - id: open
                type: email.open
                delta: 1
                repeatable: true
                max_awards: 10
                max_per: { count: 3, within: 1h }
            triggers:
              - { id: cooling, falls_below: 20, rearm: true }
              - { id: mql, min_points: 100, rearm: false, trigger_existing: true }
            """)
        #expect(rules.actions[0].maxAwards == 10)
        #expect(rules.actions[0].maxPer == RateCap(count: 3, within: 3_600_000))
        #expect(rules.triggers[0] == PointTrigger(id: "cooling", fallsBelow: 20, rearm: true))
        #expect(rules.triggers[1] == PointTrigger(id: "mql", minPoints: 100, triggerExisting: true))
    }

    @Test("C1 C2 caps on a once-only action are reported on their lines")
    func capsNeedRepeatable() {
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                max_awards: 2
            """, line: 5, containing: "\"max_awards\" applies to repeatable actions only")
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                repeatable: false
                max_per: { count: 1, within: 1d }
            """, line: 6, containing: "\"max_per\" applies to repeatable actions only")
    }

    @Test("C1 max_awards must be a positive integer, reported on its line")
    func maxAwardsRange() {
        for value in ["0", "-1", "two", "1.5"] {
            expectOneIssue(
                """
                actions:
                  - id: a
                    type: email.open
                    delta: 1
                    repeatable: true
                    max_awards: \(value)
                """, line: 6, containing: "max_awards")
        }
    }

    @Test("C2 max_per needs count ≥ 1 and a duration, and knows no other key; each mistake on its line")
    func maxPerMistakes() {
        let head = """
            actions:
              - id: a
                type: email.open
                delta: 1
                repeatable: true
                max_per:
            """
        expectOneIssue(
            head + "\n      count: 0\n      within: 1h", line: 7, containing: "\"count\" must be within 1...")
        expectOneIssue(head + "\n      within: 1h", line: 7, containing: "\"count\" is required")
        expectOneIssue(head + "\n      count: 2", line: 7, containing: "\"within\" is required")
        expectOneIssue(
            head + "\n      count: 2\n      within: soon", line: 8, containing: "\"within\" must be a positive duration"
        )
        expectOneIssue(head + "\n      count: 2\n      within: 0s", line: 8, containing: "positive duration")
        expectOneIssue(
            head + "\n      count: 2\n      within: 1h\n      per: contact", line: 9, containing: "unknown key \"per\"")
        expectOneIssue(head + " 3", line: 6, containing: "max_per must be a mapping")
    }

    @Test("T8 falls_below and min_points exclude each other; a trigger needs one of them")
    func fallsBelowExclusive() {
        expectOneIssue(
            """
            triggers:
              - id: t
                min_points: 10
                falls_below: 5
            """, line: 4, containing: "\"falls_below\" and \"min_points\" exclude each other")
        expectOneIssue(
            """
            triggers:
              - id: t
                name: neither
            """, line: 2, containing: "\"min_points\" is required")
        expectOneIssue(
            """
            triggers:
              - id: t
                falls_below: lots
            """, line: 3, containing: "\"falls_below\" must be an integer")
    }

    @Test("T8 T4 trigger_existing on a falls_below trigger is reported on its line")
    func fallsBelowNoTriggerExisting() {
        expectOneIssue(
            """
            triggers:
              - id: t
                falls_below: 5
                trigger_existing: true
            """, line: 4, containing: "\"trigger_existing\" applies to min_points triggers only")
    }

    @Test("T9 rearm must be true or false, reported on its line")
    func rearmBool() {
        expectOneIssue(
            """
            triggers:
              - id: t
                min_points: 5
                rearm: yes please
            """, line: 4, containing: "\"rearm\" must be true or false")
    }
}
