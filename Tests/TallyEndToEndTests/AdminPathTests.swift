import Foundation
import TallyAPI
import TallyClient
import Testing

/// Paths that only a real process shows: the offline `tally rules check` command, the `?after=` wait that gives
/// up (504), and which rules version a rebuild uses by default (A4).
@Suite("Command paths, end to end")
struct AdminPathTests {
    static let rules = """
        actions:
          - { id: open, type: email.open, delta: 5, repeatable: true }

        """

    @Test("tally rules check: a valid file exits 0 and says what it holds; a bad one exits 1 naming each line")
    func rulesCheck() throws {
        let daemon = try Daemon(rules: Self.rules)  // not started: the check is offline
        let good = daemon.directory + "/good.yaml"
        try """
        groups: [product]
        actions:
          - { id: open, type: email.open, delta: 5 }
          - { id: docs, type: url.hit, url: "https://x.com/docs/*", page_hits: 3, delta: 7, group: product }
        triggers:
          - { id: mql, min_points: 10, events: [{ id: tag, type: tags.modify, add: [mql] }] }

        """.write(toFile: good, atomically: true, encoding: .utf8)
        let valid = try daemon.run(["rules", "check", good])
        #expect(valid.status == 0, "\(valid.error)")
        #expect(valid.output.contains("valid — 2 actions, 1 triggers, 1 groups"), "\(valid.output)")
        let json = try daemon.run(["rules", "check", good, "--json"])
        #expect(try decode(RulesCheckReport.self, output: json.output).valid, "\(json.output)")

        let bad = daemon.directory + "/bad.yaml"
        try """
        actions:
          - { id: open, type: email.opened, delta: 5 }
          - { id: open, type: email.open, delta: lots }

        """.write(toFile: bad, atomically: true, encoding: .utf8)
        let invalid = try daemon.run(["rules", "check", bad])
        #expect(invalid.status == 1)
        #expect(invalid.output.isEmpty)
        let lines = invalid.error.split(separator: "\n").filter { $0.hasPrefix(bad + ":") }
        #expect(lines.contains { $0.hasPrefix(bad + ":2:") && $0.contains("email.opened") }, "\(invalid.error)")
        #expect(lines.contains { $0.hasPrefix(bad + ":3:") && $0.contains("delta") }, "\(invalid.error)")
        let invalidJSON = try daemon.run(["rules", "check", bad, "--json"])
        #expect(invalidJSON.status == 1)
        let report = try decode(RulesCheckReport.self, output: invalidJSON.output)
        #expect(!report.valid)
        #expect(Set((report.errors ?? []).map(\.line)) == [2, 3], "\(invalidJSON.output)")

        let missing = try daemon.run(["rules", "check", daemon.directory + "/missing.yaml"])
        #expect(missing.status != 0)
        #expect(missing.error.contains("cannot read"), "\(missing.error)")
    }

    @Test("?after=SEQ beyond the log answers 504 after limits.read_after_timeout, naming the sequence numbers")
    func readAfterTimesOut() throws {
        let daemon = try Daemon(rules: Self.rules, extraConfig: "limits: { read_after_timeout: 1s }")
        try daemon.start()
        defer { daemon.stop() }
        let posted = try daemon.post([JSON.event("email.open", contact: "c", item: "n")])
        let last = try #require(try posted.receipt.lastSeq)
        #expect(try daemon.contact("c", after: last).status == 200)
        let far = last + 1000
        for path in ["/v1/contacts/c?after=\(far)", "/v1/contacts/c/explain?after=\(far)"] {
            let reply = try daemon.admin().request("GET", path)
            #expect(reply.status == 504, "\(path)")
            let message = try reply.error.message
            #expect(message.contains("sequence \(far)") && message.contains("at \(last)"), "\(message)")
        }
        let bad = try daemon.admin().request("GET", "/v1/contacts/c?after=soon")
        #expect(bad.status == 400)
    }

    @Test("A4 a rebuild without --version uses the version in force, which a rebuild under an older one pinned")
    func rebuildDefaultsToTheVersionInForce() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let v2 = daemon.directory + "/v2.yaml"
        try Self.rules.replacingOccurrences(of: "delta: 5", with: "delta: 7")
            .write(toFile: v2, atomically: true, encoding: .utf8)
        #expect(try daemon.run(["rules", "publish", v2]).status == 0)
        let posted = try daemon.post([JSON.event("email.open", contact: "c", item: "n")])
        let last = try #require(try posted.receipt.lastSeq)
        #expect(try daemon.contact("c", after: last).document?.points == 7)

        // With version 2 the newest and in force, the default is 2: nothing would change.
        let first = try daemon.run(["rebuild", "--dry-run", "--json"])
        #expect(try decode(RebuildPreview.self, output: first.output).rulesVersion == 2, "\(first.output)")

        let pinned = try daemon.run(["rebuild", "--version", "1"])
        #expect(pinned.status == 0, "\(pinned.error)")
        #expect(try daemon.contact("c").document?.points == 5)
        let listed = try daemon.admin().request("GET", "/v1/rules").decode(RulesVersionList.self).versions
        #expect(listed.map(\.inForce) == [true, false], "\(listed)")

        // Now version 1 is in force: the default dry run and rebuild use it, and change nothing.
        let preview = try daemon.run(["rebuild", "--dry-run", "--json"])
        let object = try decode(RebuildPreview.self, output: preview.output)
        #expect(object.rulesVersion == 1, "\(preview.output)")
        #expect(object.changed == 0, "\(preview.output)")
        let again = try daemon.adminRequest("POST", "/v1/rebuild")
        #expect(again.status == 202)
        #expect(try again.decode(RebuildStarted.self).rulesVersion == 1, "\(again.text)")
    }
}
