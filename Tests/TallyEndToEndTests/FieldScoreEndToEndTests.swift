import Foundation
import TallyAPI
import TallyClient
import Testing

/// F1 and F2 through the real daemon on real sockets: `tally contact set`, the admin route, explain and verify.
@Suite("Fields and fit scores, end to end")
struct FieldScoreEndToEndTests {
    @Test("F1 F2 a fit score awarded by `tally contact set`, reversed by a later update; explain sums; verify passes")
    func fitScoreAwardedThenReversed() throws {
        let daemon = try Daemon(
            rules: """
                actions:
                  - { id: guide, type: asset.download, delta: 10 }
                  - { id: big-company, type: contact.field, delta: 50, field: size, gte: 500 }
                  - { id: cto, type: contact.field, delta: 20, field: title, contains: Chief }
                triggers:
                  - { id: mql, min_points: 60, events: [{ id: tag, type: tags.modify, add: [mql] }] }
                """)
        try daemon.start()
        defer { daemon.stop() }
        #expect(try daemon.post([JSON.event("asset.download", contact: "lead", item: "g")]).status == 202)

        // F1 through the CLI: a number, a string forced by --text-field, and the email.
        let set = try daemon.run([
            "contact", "set", "lead", "--field", "size=800", "--field", "title=Chief Technology Officer",
            "--text-field", "zip=01234", "--email", "lead@example.com",
        ])
        #expect(set.status == 0, "\(set.error)")
        #expect(set.output.contains("lead: score 80"), "\(set.output)")
        #expect(set.output.contains("size = 800"), "\(set.output)")
        let awarded = try #require(try daemon.contact("lead", after: try daemon.health().logHead).document)
        #expect(awarded.points == 80)
        #expect(awarded.tags == ["mql"], "T2: the trigger is evaluated after the fit score's award")
        #expect(
            awarded.fields == [
                "size": .number(800), "title": .string("Chief Technology Officer"), "zip": .string("01234"),
            ])
        #expect(awarded.email == "lead@example.com")

        // F2 reversal through the admin route: the size drops below 500, the title is removed.
        let update = try daemon.adminRequest(
            "POST", "/v1/contacts/lead", json: #"{"fields":{"size":120,"title":null}}"#)
        #expect(update.status == 202, "\(update.text)")
        let seq = try #require(try update.receipt.lastSeq)
        let reversed = try #require(try daemon.contact("lead", after: seq).document)
        #expect(reversed.points == 10)
        #expect(reversed.fields == ["size": .number(120), "zip": .string("01234")])

        let explain = try daemon.admin().request("GET", "/v1/contacts/lead/explain").decode(ExplainDocument.self)
        let fieldEntries = explain.entries.filter { $0.kind == "field" }
        #expect(fieldEntries.map(\.action) == ["big-company", "cto", "big-company", "cto"])
        #expect(fieldEntries.map(\.delta) == [50, 20, -50, -20])
        #expect(fieldEntries[2].reason.contains("no longer size ≥ 500: size is 120"), "\(fieldEntries[2].reason)")
        #expect(explain.entries.filter { $0.group == nil }.map(\.delta).reduce(0, +) == reversed.points)
        #expect(explain.points == reversed.points)

        // The same again through the CLI: a number set back over the bound awards again.
        let again = try daemon.run(["contact", "set", "lead", "--field", "size=500", "--remove", "zip", "--json"])
        #expect(again.status == 0, "\(again.error)")
        let document = try decode(ContactDocument.self, output: again.output)
        #expect(document.points == 60)
        #expect(document.fields == ["size": .number(500)])

        let bad = try daemon.run(["contact", "set", "lead", "--field", "Bad=1"])
        #expect(bad.status != 0)
        #expect(bad.error.contains("[a-z0-9_.-]{1,64}"), "\(bad.error)")
        #expect(try daemon.verify().passed)
    }
}
