import Foundation
import TallyAPI
import TallyClient
import Testing

/// Rules shared by the end-to-end tests.
let endToEndRules = """
    groups: [product]
    actions:
      - { id: dl, type: asset.download, delta: 10, items: [guide] }
      - { id: open, type: email.open, delta: 2, repeatable: true }
      - { id: demo, type: form.submit, delta: 25, group: product, repeatable: true }
      - { id: pricing, type: url.hit, delta: 5, repeatable: true, url: "https://x.com/pricing*" }
      - { id: landing, type: page.hit, delta: -1, repeatable: true }
    """

@Suite("Ingest and admin sockets, end to end")
struct IngestTests {
    @Test("S1 S4 JSON and NDJSON posts are scored and read back from the admin socket")
    func postAndReadScores() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        defer { daemon.stop() }

        let single = JSON.event("asset.download", contact: "c-1", item: "guide", id: "e-1")
        let first = try daemon.ingest().request(
            "POST", "/v1/events", body: Array(single.utf8), contentType: "application/json")
        #expect(first.status == 202)
        #expect(try first.receipt.accepted == 1)
        #expect(try first.receipt.firstSeq == 2)

        let reply = try daemon.post([
            JSON.event("email.open", contact: "c-1", item: "n1"),
            JSON.event("email.open", contact: "c-1", item: "n2"),
            JSON.event("form.submit", contact: "c-1", item: "demo"),
            JSON.event("url.hit", contact: "c-1", url: "https://X.com/Pricing/?utm=1"),
            JSON.event("url.hit", contact: "c-1", url: "https://x.com/about"),
            JSON.event("asset.download", contact: "c-1", item: "guide"),
            JSON.event("page.hit", contact: "c-2", item: "lp"),
        ])
        #expect(reply.status == 202)
        let receipt = try reply.receipt
        #expect(receipt.accepted == 7)
        #expect(receipt.firstSeq == 3)
        #expect(receipt.lastSeq == 9)

        let (status, contact) = try daemon.contact("c-1", after: 9)
        #expect(status == 200)
        let expected: Int64 = 10 + 2 + 2 + 5  // dl once (S3), two opens, one pricing hit
        #expect(contact?.points == expected)
        #expect(contact?.groups["product"] == 25)
        #expect(contact?.contact == "c-1")
        #expect(try daemon.contact("c-2").document?.points == -1)
        #expect(try daemon.contact("nobody").status == 404)
        let health = try daemon.health()
        #expect(health.logHead == 9)
    }

    @Test(
        "a bad line rejects the whole request with 400 (403 for an administrative type) naming the line and field, and appends nothing"
    )
    func badBatchAppendsNothing() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        defer { daemon.stop() }
        #expect(try daemon.post([JSON.event("email.open", contact: "c", item: "x")]).status == 202)

        let cases: [(lines: [String], line: Int, field: String?)] = [
            ([JSON.event("email.open", contact: "c", item: "x"), #"{"type":"email.open","item":"x"}"#], 2, "contact"),
            ([JSON.event("email.open", contact: "c", item: "x"), "", #"{"type":"nope","contact":"c"}"#], 3, "type"),
            ([#"{"type":"url.hit","contact":"c","url":"not a url"}"#], 1, "url"),
            ([#"{"type":"email.open","contact":"c","item":"x","at":"2026-13-01T00:00:00Z"}"#], 1, "at"),
            ([#"{"type":"email.open","contact":"\#(String(repeating: "a", count: 129))","item":"x"}"#], 1, "contact"),
            ([JSON.event("email.open", contact: "c", item: "x"), "{not json"], 2, nil),
        ]
        for (lines, line, field) in cases {
            let reply = try daemon.post(lines)
            #expect(reply.status == 400, "\(lines)")
            let error = try reply.error
            #expect(error.line == line, "\(reply.text)")
            #expect(error.field == field, "\(reply.text)")
        }
        var invalidUTF8 = Array(#"{"type":"email.open","contact":""#.utf8) + [0xFF, 0xFE]
        invalidUTF8 += Array(#"","item":"x"}"#.utf8)
        let utf8Reply = try daemon.ingest().request(
            "POST", "/v1/events", body: invalidUTF8, contentType: "application/x-ndjson")
        #expect(utf8Reply.status == 400)
        // An administrative type is refused with 403, and nothing of the request is appended.
        let admin = try daemon.post([
            JSON.event("email.open", contact: "c", item: "x"),
            #"{"type":"contact.update","contact":"c","email":"a@b.c"}"#,
        ])
        #expect(admin.status == 403)
        #expect(try admin.error.line == 2)
        #expect(try daemon.health().logHead == 2)
    }

    @Test("S6 a retried event id is acknowledged as a duplicate and scored once")
    func retriedIDIsScoredOnce() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        defer { daemon.stop() }
        let line = JSON.event("email.open", contact: "c-9", item: "x", id: "retry-1")
        #expect(try daemon.post([line]).receipt.accepted == 1)
        let again = try daemon.post([line, line]).receipt
        #expect(again.accepted == 0)
        #expect(again.duplicates == 2)
        #expect(again.lastSeq == 2)
        #expect(try daemon.contact("c-9", after: 2).document?.points == 2)
    }

    @Test("the ingest socket is 0666, the admin socket 0600, and a second daemon refuses to start")
    func socketsAndSingleInstance() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        defer { daemon.stop() }
        func mode(_ path: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
        }
        #expect(try mode(daemon.ingestSocket) == 0o666)
        #expect(try mode(daemon.adminSocket) == 0o600)
        // The admin routes are not on the ingest socket.
        #expect(try daemon.ingest().request("GET", "/v1/contacts/c").status == 404)

        let second = try daemon.run(["serve"])
        #expect(second.status != 0)
        #expect(second.error.contains("another tally daemon"))
        #expect(try daemon.ingest().request("GET", "/health").status == 200)
    }

    @Test(
        "the admin socket takes the configured mode and group; a world-writable socket directory and sockets in use are refused"
    )
    func socketModeGroupAndDirectory() throws {
        guard let group = getgrgid(getgid()).map({ String(cString: $0.pointee.gr_name) }) else { return }
        let daemon = try Daemon(
            rules: endToEndRules, extraConfig: "admin_socket_mode: \"0660\"\nadmin_socket_group: \(group)")
        try daemon.start()
        defer { daemon.stop() }
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.adminSocket)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o660)
        #expect(attributes[.groupOwnerAccountName] as? String == group)

        // Another daemon (its own data) on the same sockets: refused, and the first one keeps serving.
        let other = try Daemon(rules: endToEndRules)
        var config = try String(contentsOfFile: other.configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: other.directory + "/run", with: daemon.directory + "/run")
        try config.write(toFile: other.configPath, atomically: true, encoding: .utf8)
        let refused = try other.run(["serve"])
        #expect(refused.status != 0)
        #expect(refused.error.contains("another daemon is listening"), "\(refused.error)")
        #expect(try daemon.ingest().request("GET", "/health").status == 200)

        let open = try Daemon(rules: endToEndRules)
        try FileManager.default.createDirectory(
            atPath: open.directory + "/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        chmod(open.directory + "/run", 0o777)
        let unsafe = try open.run(["serve"])
        #expect(unsafe.status != 0)
        #expect(unsafe.error.contains("writable by other users"), "\(unsafe.error)")
    }

    @Test("SIGTERM shuts down cleanly with exit 0, and the events are there after a restart")
    func gracefulShutdownAndRestart() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        let lines = (0..<100).map { JSON.event("email.open", contact: "c-\($0 % 7)", item: "x", id: "g-\($0)") }
        #expect(try daemon.post(lines).status == 202)
        #expect(daemon.stop() == 0)
        try daemon.start()
        defer { daemon.stop() }
        #expect(try daemon.health().logHead == 101)
        var total: Int64 = 0
        for contact in 0..<7 { total += try #require(try daemon.contact("c-\(contact)", after: 101).document).points }
        #expect(total == 200)
    }

    @Test("tally send posts NDJSON from standard input and tally score reads the result")
    func sendAndScoreCommands() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        defer { daemon.stop() }
        let input = [
            JSON.event("form.submit", contact: "c@x.com", item: "demo"),
            JSON.event("email.open", contact: "c@x.com", item: "n"),
        ].joined(separator: "\n")
        let sent = try daemon.run(["send", "--json"], stdin: input)
        #expect(sent.status == 0, "\(sent.error)")
        #expect(try decode(EventReceipt.self, output: sent.output).accepted == 2)
        let score = try daemon.run(["score", "c@x.com", "--after", "3"])
        #expect(score.status == 0, "\(score.error)")
        #expect(score.output.contains("c@x.com: 2 points"))
        #expect(score.output.contains("product: 25"))

        let bad = try daemon.run(["send"], stdin: input + "\n{\"type\":\"email.open\"}\n")
        #expect(bad.status != 0)
        #expect(bad.error.contains("line 3"))
    }
}
