import Foundation
import TallyAPI
import TallyClient
import Testing

/// Erasure (I8) through the real daemon: a contact with an alias, sessions, awards that age and outbox entries is
/// erased; no file under `data_dir` holds its id, its alias or its email address any more (`grep -a`), verify
/// passes, the other contacts are unchanged, and the id can start again.
@Suite("Erasure: a contact leaves the log and every file, end to end")
struct ErasureEndToEndTests {
    static let t: Int64 = 1_767_225_600_000
    static let id = "zq-erase-7731"
    static let email = "zq-erase-7731@forget.example"
    static let alias = "anon-zq-9911"

    static let rules = """
        actions:
          - { id: pricing, type: url.hit, delta: 5, url: "https://x.com/pricing*", repeatable: true }
          - { id: guide, type: asset.download, delta: 10, expires_after: 30d }
          - { id: demo, type: form.submit, delta: 20, repeatable: true }
        triggers:
          - id: mql
            min_points: 25
            events:
              - { id: tag, type: tags.modify, add: [mql] }
              - { id: crm, type: integration.push, integration: crm }
        """

    /// Files under `directory` in which `grep -a` finds `text`.
    static func grep(_ text: String, in directory: String) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/grep")
        process.arguments = ["-r", "-a", "-l", "-F", text, directory]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    static func hit(_ contact: String, _ offset: Int64) -> String {
        let object: [String: Any] = [
            "type": "url.hit", "contact": contact, "url": "https://x.com/pricing", "at": t + offset,
            "session": "s-\(contact)", "id": "hit-\(contact)-\(offset)",
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    @Test(
        "I8 an erased contact (with a merged alias, sessions, awards that age and outbox entries) is in no file under data_dir; verify passes; others are unchanged; the id starts afresh"
    )
    func erasure() throws {
        let daemon = try Daemon(
            rules: Self.rules,
            extraConfig: """
                integrations:
                  crm: { url: "http://127.0.0.1:9/hook" }
                outbox: { attempts: 2, backoff: 100ms }
                """)
        try daemon.start()
        defer { daemon.stop() }
        // The anonymous history, then the known contact with an email address, merged (I2).
        #expect(try daemon.post([Self.hit(Self.alias, 0), Self.hit(Self.alias, 60_000)]).status == 202)
        #expect(
            try daemon.adminRequest("POST", "/v1/contacts/\(Self.id)", json: #"{"email":"\#(Self.email)"}"#).status
                == 202)
        #expect(
            try daemon.post([
                JSON.event("asset.download", contact: Self.id, item: "guide", id: "dl-\(Self.id)", at: Self.t),
                JSON.event("form.submit", contact: Self.id, item: "demo", at: Self.t + 1),
            ]).status == 202)
        let merge = try daemon.adminRequest(
            "POST", "/v1/merge", json: #"{"from":"\#(Self.alias)","into":"\#(Self.id)"}"#)
        #expect(merge.status == 202, "\(merge.text)")
        // Another contact, which must come through unchanged.
        #expect(
            try daemon.post([
                Self.hit("keep-1", 0), JSON.event("form.submit", contact: "keep-1", item: "demo", at: Self.t + 5),
            ]).status == 202)
        let head = try daemon.health().logHead
        let erased = try #require(try daemon.contact(Self.id, after: head).document)
        #expect(erased.points == 40)
        #expect(erased.tags == ["mql"])
        let keep = try #require(try daemon.contact("keep-1").document)
        let keepExplain = try daemon.admin().request("GET", "/v1/contacts/keep-1/explain").decode(
            ExplainDocument.self)
        // Let the webhook fail at least once: delivery outcomes of the contact's side effect are in the log too.
        try AuditEndToEndTests.waitUntil(timeout: 30) {
            try daemon.admin().request("GET", "/v1/outbox").decode(OutboxList.self).entries.contains {
                $0.attempts >= 1
            }
        }
        #expect(try !Self.grep(Self.email, in: daemon.dataDirectory).isEmpty, "the test must see the email first")

        let reply = try daemon.admin().request("DELETE", "/v1/contacts/\(Self.id)")
        #expect(reply.status == 200, "\(reply.text)")
        let report = try reply.decode(ErasureReport.self)
        #expect(report.aliases == 1)
        #expect(report.removedEvents >= 6)
        #expect(report.hash.count == 64)
        for text in [Self.id, Self.email, Self.alias] {
            #expect(try Self.grep(text, in: daemon.dataDirectory) == [], "\(text) is still on disk")
        }
        #expect(try daemon.contact(Self.id).status == 404)
        #expect(try daemon.contact(Self.alias).status == 404)
        #expect(try daemon.verify().passed)
        #expect(try daemon.contact("keep-1").document == keep)
        #expect(
            try daemon.admin().request("GET", "/v1/contacts/keep-1/explain").decode(ExplainDocument.self)
                == keepExplain)
        // keep-1's side effect stays; the erased contact's went with it.
        #expect(
            try daemon.admin().request("GET", "/v1/outbox").decode(OutboxList.self).entries.map(\.key) == [
                "keep-1/mql/crm"
            ])
        #expect(try daemon.admin().request("DELETE", "/v1/contacts/\(Self.id)").status == 404)

        // The same id later is a new contact.
        let again = try daemon.post([JSON.event("form.submit", contact: Self.id, item: "demo", at: Self.t + 9)])
        #expect(try daemon.contact(Self.id, after: try again.receipt.lastSeq).document?.points == 20)
        daemon.crash()
        try daemon.start()
        #expect(try daemon.verify().passed)
    }

    @Test("I8 tally erase erases through the CLI; an unknown contact is an error")
    func eraseCommand() throws {
        let daemon = try Daemon(rules: "actions:\n  - { id: demo, type: form.submit, delta: 20 }\n")
        try daemon.start()
        defer { daemon.stop() }
        let reply = try daemon.post([JSON.event("form.submit", contact: "cli-erase-5521", item: "demo", at: Self.t)])
        _ = try daemon.contact("cli-erase-5521", after: try reply.receipt.lastSeq)
        let result = try daemon.run(["erase", "cli-erase-5521"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("erased"), "\(result.output)")
        #expect(try Self.grep("cli-erase-5521", in: daemon.dataDirectory) == [])
        let unknown = try daemon.run(["erase", "nobody-here"])
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("unknown contact"), "\(unknown.error)")
    }
}
