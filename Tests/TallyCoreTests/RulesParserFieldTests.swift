import TallyCore
import Testing

/// A contact.field action whose condition lines follow the `delta` line (line 4): the first of them is line 5.
private func action(_ lines: String) -> String {
    """
    actions:
      - id: fit
        type: contact.field
        delta: 50
    \(lines.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
    """
}

@Suite("RulesParser: contact.field actions (F2)")
struct RulesParserFieldTests {
    @Test("F2 every operator parses, with numbers for plain numeric scalars and strings for quoted ones")
    func operatorsParse() throws {
        let rules = try RulesParser.parse(
            """
            groups: [fit]
            actions:
              - { id: a, type: contact.field, delta: 50, group: fit, field: size, gte: 500 }
              - { id: b, type: contact.field, delta: -5, field: size, lte: 10.5 }
              - { id: c, type: contact.field, delta: 1, field: zip, equals: "01234" }
              - { id: d, type: contact.field, delta: 1, field: size, equals: 500 }
              - { id: e, type: contact.field, delta: 1, field: title, in: [CEO, "7", 7] }
              - { id: f, type: contact.field, delta: 1, field: title, contains: Chief }
              - { id: g, type: contact.field, delta: 1, field: phone, exists: true }
            """)
        #expect(
            rules.actions.map(\.field?.test) == [
                .atLeast(500), .atMost(10.5), .equals(.string("01234")), .equals(.number(500)),
                .oneOf([.string("CEO"), .string("7"), .number(7)]), .contains("Chief"), .exists,
            ])
        #expect(rules.actions[0].type == .contactUpdate)
        #expect(rules.actions[0].typeName == "contact.field")
        #expect(rules.actions[0].group == "fit")
        #expect(rules.actions[0].field?.field == "size")
    }

    @Test("F2 a missing field, a missing operator and two operators are reported on their lines")
    func fieldAndOperatorCount() {
        expectOneIssue(action("gte: 5"), line: 2, containing: "\"field\" is required")
        expectOneIssue(
            action("field: size"), line: 2, containing: "needs one of equals, in, gte, lte, contains, exists")
        expectOneIssue(action("field: size\ngte: 5\nlte: 9"), line: 7, containing: "give exactly one of")
    }

    @Test("F2 a bad field name and bad operands are reported on their lines")
    func badOperands() {
        expectOneIssue(action("field: Size!\ngte: 5"), line: 5, containing: "must match [a-z0-9_.-]{1,64}")
        expectOneIssue(action("field: size\ngte: many"), line: 6, containing: "\"gte\" must be a number")
        expectOneIssue(action("field: size\nlte: \"5\""), line: 6, containing: "\"lte\" must be a number")
        expectOneIssue(action("field: size\nin: []"), line: 6, containing: "non-empty list")
        expectOneIssue(action("field: size\nin: 5"), line: 6, containing: "non-empty list")
        expectOneIssue(action("field: size\nin: [a, [b]]"), line: 6, containing: "must hold strings and numbers")
        expectOneIssue(action("field: size\nequals: [a]"), line: 6, containing: "must hold strings and numbers")
        expectOneIssue(action("field: size\ncontains: \"\""), line: 6, containing: "non-empty string")
        expectOneIssue(action("field: size\nexists: false"), line: 6, containing: "\"exists\" must be true")
    }

    @Test("F2 keys of other types on a contact.field action, and field keys on other actions, are reported")
    func misplacedKeys() {
        expectOneIssue(
            action("field: size\nexists: true\nitems: [a]"), line: 7, containing: "does not apply to contact.field")
        expectOneIssue(
            action("field: size\nexists: true\nrepeatable: true"), line: 7, containing: "\"repeatable\" does not apply")
        expectOneIssue(
            """
            actions:
              - id: a
                type: email.open
                delta: 1
                gte: 5
            """, line: 5, containing: "\"gte\" applies to contact.field actions only")
        expectOneIssue(
            """
            actions:
              - id: a
                type: contact.fields
                delta: 1
            """, line: 3, containing: "contact.field)")
    }
}
