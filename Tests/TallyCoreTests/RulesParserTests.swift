import Foundation
import TallyCore
import Testing

/// The problems `RulesParser` reports for `yaml`; empty when it parses. Shared by the rules parser's suites.
func issues(_ yaml: String) -> [YAMLIssue] {
    do {
        _ = try RulesParser.parse(yaml)
        return []
    } catch {
        return error.issues
    }
}

private func parse(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RuleSet {
    do {
        return try RulesParser.parse(yaml)
    } catch {
        Issue.record("rules did not parse:\n\(error)", sourceLocation: sourceLocation)
        throw error
    }
}

/// Checks that `yaml` has exactly one problem, on `line`, whose message contains `fragment`. Shared by the rules
/// parser's suites.
func expectOneIssue(
    _ yaml: String, line: Int, containing fragment: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    let found = issues(yaml)
    #expect(found.count == 1, "\(found)", sourceLocation: sourceLocation)
    guard let issue = found.first else { return }
    #expect(issue.line == line, "\(issue)", sourceLocation: sourceLocation)
    #expect(issue.message.contains(fragment), "\(issue)", sourceLocation: sourceLocation)
}

/// The full example of SPEC §2, with real timestamps in place of `...`.
private let specExample = """
    groups: [product, content]          # optional point groups (extra scores beside the main one)
    actions:
      - id: help-center                 # stable id, [a-z0-9-_.]{1,64}, unique
        name: Reads the help center
        description: Three help pages within a day
        category: web
        type: url.hit
        delta: 5                        # -2147483648 ... 2147483647; 0 is allowed and awards nothing
        repeatable: false
        url: "https://www.contactsurge.com/help*"
        page_hits: 3                    # url.hit only, all conditions optional
        returns_within: 24h             # durations: 30s, 15m, 24h, 7d
        returns_after: 1h
        time_spent: 5m
        items: []                       # other types: limit to these item ids; empty or absent = any
        group: content                  # optional: award to this group's score instead of the main score
        published: true                 # default true
        publish_up: 2026-01-01T00:00:00Z   # optional, inclusive
        publish_down: 2027-01-01T00:00:00Z # optional, exclusive
    triggers:
      - id: mql
        name: Marketing qualified
        min_points: 100
        group: product                  # optional: watch this group's score instead of the main score
        trigger_existing: true          # on publish, fire for contacts already at or above
        published: true
        publish_up: 2026-02-01T00:00:00Z
        publish_down: 2026-12-31T23:59:59.999+01:00
        events:
          - { id: tag-mql, type: tags.modify, add: [mql], remove: [cold] }
          - { id: seg-mql, type: segments.modify, add: [mql-list], remove: [] }
          - { id: camp, type: campaigns.modify, add: [nurture], remove: [onboarding] }
          - { id: crm, type: integration.push, integration: crm }
          - { id: welcome, type: email.send, email: mql-welcome }
          - { id: alert, type: email.send_to_user, email: mql-alert, to_owner: true, to: [sales@example.com] }
    """

@Suite("RulesParser: the rules file (SPEC §2)")
struct RulesParserTests {
    @Test("config/rules.yaml parses without errors")
    func shippedRulesFile() throws {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // TallyCoreTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
            .appendingPathComponent("config/rules.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let rules = try parse(text)
        #expect(rules.groups == ["product", "content"])
        #expect(rules.actions.count == 8)
        #expect(
            Set(rules.actions.map(\.type)) == Set(behaviourTypes + [.contactUpdate]),
            "one action per behaviour type at least, and a fit score (F2)")
        #expect(Set(rules.actions.map(\.id)).count == rules.actions.count)
        let spring = try #require(rules.actions.first { $0.id == "spring-campaign-open" })
        #expect(spring.window == PublishWindow(published: true, up: 1_772_323_200_000, down: 1_780_272_000_000))
        #expect(spring.items == ["spring-2026"])
        let pricing = try #require(rules.actions.first { $0.id == "pricing-page" })
        #expect(pricing.url?.text == "https://www.example.com/pricing*")
        // The example of each scoring feature: D2, D3, C2, F2 and T8.
        let whitepaper = try #require(rules.actions.first { $0.id == "whitepaper-download" })
        #expect(whitepaper.aging == .expiry(after: 180 * 86_400_000))
        let newsletter = try #require(rules.actions.first { $0.id == "newsletter-open" })
        #expect(newsletter.aging?.kind == .decay)
        #expect(newsletter.maxPer == RateCap(count: 3, within: 86_400_000))
        #expect(rules.actions.contains { $0.field != nil })
        #expect(rules.triggers.map(\.id) == ["cooling", "mql"])
        #expect(rules.triggers.first?.fallsBelow == 20)
        #expect(rules.triggers.last?.events.count == 6)
    }

    @Test("the full example of SPEC §2 parses, every key")
    func specExampleParses() throws {
        let rules = try parse(specExample)
        #expect(rules.groups == ["product", "content"])

        #expect(rules.actions.count == 1)
        let action = try #require(rules.actions.first)
        #expect(
            action
                == PointAction(
                    id: "help-center", name: "Reads the help center", description: "Three help pages within a day",
                    category: "web", type: .urlHit, delta: 5, repeatable: false,
                    url: URLPattern("https://www.contactsurge.com/help*"),
                    conditions: URLConditions(
                        pageHits: 3, returnsWithin: 86_400_000, returnsAfter: 3_600_000, timeSpent: 300_000),
                    items: [], group: "content",
                    window: PublishWindow(published: true, up: 1_767_225_600_000, down: 1_798_761_600_000)))

        #expect(rules.triggers.count == 1)
        let trigger = try #require(rules.triggers.first)
        #expect(trigger.id == "mql")
        #expect(trigger.name == "Marketing qualified")
        #expect(trigger.minPoints == 100)
        #expect(trigger.group == "product")
        #expect(trigger.triggerExisting)
        #expect(trigger.window == PublishWindow(published: true, up: 1_769_904_000_000, down: 1_798_757_999_999))
        #expect(
            trigger.events == [
                TriggerEvent(id: "tag-mql", kind: .tags(add: ["mql"], remove: ["cold"])),
                TriggerEvent(id: "seg-mql", kind: .segments(add: ["mql-list"], remove: [])),
                TriggerEvent(id: "camp", kind: .campaigns(add: ["nurture"], remove: ["onboarding"])),
                TriggerEvent(id: "crm", kind: .integrationPush(integration: "crm")),
                TriggerEvent(id: "welcome", kind: .emailSend(email: "mql-welcome")),
                TriggerEvent(
                    id: "alert", kind: .emailSendToUser(email: "mql-alert", toOwner: true, to: ["sales@example.com"])),
            ])
    }

    @Test("defaults: repeatable false, published true, no window, no group, any item")
    func defaults() throws {
        let rules = try parse(
            """
            actions:
              - { id: a, type: form.submit, delta: 1 }
            triggers:
              - { id: t, min_points: 0 }
            """)
        #expect(rules.groups.isEmpty)
        #expect(rules.actions == [PointAction(id: "a", type: .formSubmit, delta: 1)])
        #expect(rules.triggers == [PointTrigger(id: "t", minPoints: 0)])
    }

    @Test("an empty file is an empty rule set")
    func emptyFile() throws {
        #expect(try parse("") == RuleSet())
        #expect(try parse("# only a comment\n") == RuleSet())
        #expect(try parse("actions: []\ntriggers:\n") == RuleSet())
    }

    @Test("delta accepts the whole Int32 range, and 0")
    func deltaBounds() throws {
        let rules = try parse(
            """
            actions:
              - { id: min, type: email.open, delta: -2147483648 }
              - { id: max, type: email.open, delta: 2147483647 }
              - { id: zero, type: email.open, delta: 0 }
            """)
        #expect(rules.actions.map(\.delta) == [Int64(Int32.min), Int64(Int32.max), 0])
    }

    @Test("valid ids are [a-z0-9-_.]{1,64}")
    func validIDs() {
        for id in ["a", "help-center", "a_b.c-9", "0", String(repeating: "x", count: 64)] {
            #expect(RulesParser.isValidID(id), "\(id)")
        }
        for id in ["", "Help", "a b", "a/b", "é", "a:b", String(repeating: "x", count: 65)] {
            #expect(!RulesParser.isValidID(id), "\(id)")
        }
    }

    // MARK: Errors with their lines

    @Test("an unknown key (a typo) is reported on its line")
    func unknownKey() {
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                repeatible: true
            """, line: 5, containing: "unknown key \"repeatible\"")
        expectOneIssue(
            """
            groups: [a]
            action:
              - { id: a, type: email.open, delta: 1 }
            """, line: 2, containing: "unknown key \"action\"")
        expectOneIssue(
            """
            triggers:
              - id: t
                min_points: 1
                trigger_existing: true
                evnts: []
            """, line: 5, containing: "unknown key \"evnts\"")
    }

    @Test("a bad id is reported on its line")
    func badID() {
        expectOneIssue(
            """
            actions:
              - id: ok
                type: email.open
                delta: 1
              - id: Help Center
                type: email.open
                delta: 1
            """, line: 5, containing: "must match")
        expectOneIssue(
            """
            groups: [good, Bad]
            """, line: 1, containing: "group \"Bad\"")
    }

    @Test("a duplicate action id is reported on the second action's line")
    func duplicateActionID() {
        expectOneIssue(
            """
            actions:
              - id: same
                type: email.open
                delta: 1
              - id: other
                type: email.open
                delta: 1
              - id: same
                type: form.submit
                delta: 2
            """, line: 8, containing: "\"same\" is used twice")
    }

    @Test("an unknown action type is reported on its line")
    func unknownActionType() {
        expectOneIssue(
            """
            actions:
              - id: a
                delta: 1
                type: page.view
                items: [x]
            """, line: 4, containing: "unknown type \"page.view\"")
        // Administrative types are not behaviours: no point action takes them.
        expectOneIssue(
            """
            actions:
              - id: a
                type: contact.update
                delta: 1
            """, line: 3, containing: "unknown type \"contact.update\"")
    }

    @Test("a delta outside the Int32 range is reported on its line")
    func deltaOutOfRange() {
        for delta in ["2147483648", "-2147483649", "9223372036854775807", "99999999999999999999"] {
            expectOneIssue(
                """
                actions:
                  - id: a
                    type: email.open
                    delta: \(delta)
                """, line: 4, containing: "delta")
        }
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1.5
            """, line: 4, containing: "must be an integer")
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
            """, line: 2, containing: "\"delta\" is required")
    }

    @Test("a group that is not declared is reported on its line")
    func undeclaredGroup() {
        expectOneIssue(
            """
            groups: [product]
            actions:
              - id: a
                type: email.open
                delta: 1
                group: sales
            triggers:
              - id: t
                min_points: 5
                group: product
            """, line: 6, containing: "group \"sales\" is not declared")
        expectOneIssue(
            """
            triggers:
              - id: t
                min_points: 5
                group: product
            """, line: 4, containing: "group \"product\" is not declared")
    }

    @Test("publish_down before (or at) publish_up is reported on publish_down's line")
    func windowOrder() {
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                publish_down: 2026-01-01T00:00:00Z
                publish_up: 2026-06-01T00:00:00Z
            """, line: 5, containing: "publish_down")
        expectOneIssue(
            """
            triggers:
              - id: t
                min_points: 1
                publish_up: 2026-01-01T02:00:00+02:00
                publish_down: 2026-01-01T00:00:00Z
            """, line: 5, containing: "publish_down")
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                publish_up: 2026-13-01T00:00:00Z
            """, line: 5, containing: "RFC 3339")
    }

    @Test("url.hit conditions on a non-url action are reported on their lines")
    func urlConditionsOnItemAction() {
        let found = issues(
            """
            actions:
              - id: a
                type: form.submit
                delta: 1
                page_hits: 3
                url: "https://x.com/*"
                returns_within: 24h
                returns_after: 1h
                time_spent: 5m
            """)
        #expect(found.map(\.line) == [5, 6, 7, 8, 9])
        #expect(found.allSatisfy { $0.message.contains("url.hit actions only") }, "\(found)")
        expectOneIssue(
            """
            actions:
              - id: a
                type: url.hit
                url: "*"
                delta: 1
                items: [x]
            """, line: 6, containing: "\"items\"")
        expectOneIssue(
            """
            actions:
              - id: a
                type: url.hit
                delta: 1
            """, line: 2, containing: "\"url\" is required")
        expectOneIssue(
            """
            actions:
              - id: a
                type: url.hit
                url: "*"
                delta: 1
                returns_within: soon
            """, line: 6, containing: "returns_within")
    }

    @Test("an unknown trigger event type is reported on its line")
    func unknownTriggerEventType() {
        expectOneIssue(
            """
            triggers:
              - id: t
                min_points: 1
                events:
                  - { id: tag, type: tags.modify, add: [x] }
                  - { id: bad, type: points.add }
                  - { id: mail, type: email.send, email: welcome }
            """, line: 6, containing: "unknown trigger event type \"points.add\"")
        expectOneIssue(
            """
            triggers:
              - id: t
                min_points: 1
                events:
                  - id: bad
                    type: sms.send
            """, line: 6, containing: "unknown trigger event type \"sms.send\"")
    }

    @Test("a YAML syntax error is reported with its line")
    func syntaxError() {
        let found = issues(
            """
            groups: [product]
            actions:
              - id: a
                name: Broken: here
                type: email.open
                delta: 1
            """)
        #expect(found.count == 1)
        #expect(found.first?.line == 4, "\(found)")
        #expect(found.first?.message.contains("YAML syntax error") == true, "\(found)")

        let unclosed = issues(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                items: [a, b
            triggers: []
            """)
        #expect(unclosed.count == 1)
        #expect(unclosed.first.map { (5...6).contains($0.line) } == true, "\(unclosed)")
        #expect(unclosed.first?.message.contains("YAML syntax error") == true, "\(unclosed)")
    }

    @Test("every error is reported, not only the first, sorted by line")
    func everyError() throws {
        let yaml = """
            groups: [product]
            actions:
              - id: good
                type: email.open
                delta: 1
              - id: Bad-ID
                type: email.open
                delta: 1
              - id: b
                type: email.opened
                delta: 1
              - id: c
                type: email.open
                delta: 4294967296
                group: sales
              - id: good
                type: form.submit
                delta: 1
                repeatible: true
                publish_up: 2027-01-01T00:00:00Z
                publish_down: 2026-01-01T00:00:00Z
              - id: d
                type: asset.download
                delta: 1
                page_hits: 2
            triggers:
              - id: t
                min_points: 10
                colour: red
                events:
                  - { id: e, type: points.add }
            """
        let found = issues(yaml)
        #expect(found.map(\.line) == [6, 10, 14, 15, 16, 19, 21, 25, 29, 31], "\(found)")
        #expect(found.count == 10)
        do {
            _ = try RulesParser.parse(yaml, file: "config/rules.yaml")
            Issue.record("a file with errors parsed")
        } catch {
            #expect(error.file == "config/rules.yaml")
            #expect(error.issues == found)
            let lines = error.description.split(separator: "\n")
            #expect(lines.count == 10)
            #expect(lines.first?.hasPrefix("config/rules.yaml:6: ") == true, "\(error)")
        }
    }

    @Test("wrong shapes are reported, not crashed on")
    func wrongShapes() {
        #expect(!issues("actions: 5").isEmpty)
        #expect(!issues("- just\n- a list\n").isEmpty)
        #expect(!issues("actions:\n  - just a string\n").isEmpty)
        #expect(!issues("actions:\n  - { id: a, type: [email.open], delta: 1 }\n").isEmpty)
        #expect(!issues("actions:\n  - { id: a, type: email.open, delta: 1, repeatable: maybe }\n").isEmpty)
        #expect(!issues("actions:\n  - { id: a, type: email.open, delta: 1, items: x }\n").isEmpty)
        #expect(!issues("groups: [a, a]\n").isEmpty)
        #expect(!issues("actions:\n  - { id: a, id: b, type: email.open, delta: 1 }\n").isEmpty)
        #expect(!issues("triggers:\n  - { id: t, min_points: 1, events: [ { id: e, type: tags.modify } ] }\n").isEmpty)
        #expect(
            !issues(
                "triggers:\n  - { id: t, min_points: 1, events: [ { id: e, type: email.send_to_user, email: x } ] }\n"
            )
            .isEmpty)
    }
}

@Suite("Rules checks beyond the spec's grammar")
struct RulesCheckTests {
    @Test("U1 a url pattern with # but no ? is refused: it could never match")
    func fragmentWithoutQuery() throws {
        let yaml = """
            actions:
              - { id: a, type: url.hit, delta: 1, url: "https://x.com/page#section" }
            """
        #expect(throws: YAMLValidationError.self) { try RulesParser.parse(yaml) }
        let matching = try RulesParser.parse(
            """
            actions:
              - { id: a, type: url.hit, delta: 1, url: "https://x.com/page?*#section" }
            """)
        #expect(matching.actions.first?.url?.matches("https://x.com/page?utm=1#section") == true)
        #expect(URLPattern("https://x.com/blog/*").matches("https://x.com/blog/"))
        #expect(URLPattern("https://x.com/blog/*").matches("https://x.com/blog"))
        #expect(!URLPattern("https://x.com/blog/*").matches("https://x.com/blogs"))
    }
}
