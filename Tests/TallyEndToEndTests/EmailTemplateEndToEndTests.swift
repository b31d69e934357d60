import Foundation
import TallyAPI
import TallyClient
import Testing

/// Email templates (SPEC §12) through the real daemon, the real `tally` command and a real SMTP server.
@Suite("Email templates, end to end")
struct EmailTemplateEndToEndTests {
    static let rules = """
        groups: [product]
        actions:
          - { id: open, type: email.open, delta: 10, repeatable: true }
        triggers:
          - id: mql
            name: Marketing qualified
            min_points: 20
            events:
              - { id: welcome, type: email.send, email: mql-welcome }
              - { id: alert, type: email.send_to_user, email: mql-alert, to: [sales@example.com] }

        """

    /// The parts of a `multipart/alternative` message by content type (text/plain, text/html), bodies with LF
    /// line ends, quoted-printable soft breaks joined.
    static func parts(of message: String) throws -> [String: String] {
        let text = message.replacingOccurrences(of: "\r\n", with: "\n")
        let marker = "boundary=\""
        let start = try #require(text.range(of: marker)).upperBound
        let boundary = String(text[start...].prefix { $0 != "\"" })
        var parts: [String: String] = [:]
        for chunk in text.components(separatedBy: "\n--" + boundary).dropFirst() where !chunk.hasPrefix("--") {
            let pieces = chunk.components(separatedBy: "\n\n")
            let headers = pieces[0]
            let body = pieces.dropFirst().joined(separator: "\n\n").replacingOccurrences(of: "=\n", with: "")
            if headers.contains("Content-Type: text/plain") { parts["text/plain"] = body }
            if headers.contains("Content-Type: text/html") { parts["text/html"] = body }
        }
        return parts
    }

    @Test(
        "E1 E3: a trigger's email, received by the real SMTP server, is multipart with the contact in both parts",
        .disabled(if: aiosmtpdMissing, "python3-aiosmtpd is not installed (scripts/install-deps --test installs it)")
    )
    func receivedEmail() throws {
        let scratch = "/tmp/tally-mail-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let mail = try MailServer(directory: scratch)
        let daemon = try Daemon(
            rules: Self.rules,
            extraConfig: """
                smtp: { host: 127.0.0.1, port: \(mail.port), from: "tally@example.com" }
                outbox: { attempts: 3, backoff: 100ms }
                """)
        try daemon.start()
        defer { daemon.stop() }
        let update = try daemon.admin().request(
            "POST", "/v1/contacts/c-7", body: Array(#"{"email":"ann@example.com"}"#.utf8),
            contentType: "application/json")
        #expect(update.status == 202, "\(update.text)")
        let reply = try daemon.post([
            JSON.event("email.open", contact: "c-7", item: "n1"), JSON.event("email.open", contact: "c-7", item: "n2"),
        ])
        #expect(reply.status == 202)
        let lastSeq = try #require(try reply.receipt.lastSeq)
        let contact = try #require(try daemon.contact("c-7", after: lastSeq).document)
        #expect(contact.points == 20)
        for key in ["c-7/mql/welcome", "c-7/mql/alert"] {
            _ = try TriggerDeliveryTests.waitForEntry(daemon, key, state: "delivered")
        }
        let messages = mail.messages
        #expect(messages.count == 2)
        let welcome = try #require(messages.first { $0.contains("X-Tally-Template: mql-welcome") })
        #expect(welcome.contains("Subject: Welcome aboard, c-7"))
        #expect(welcome.contains("Content-Type: multipart/alternative; boundary="))
        let parts = try Self.parts(of: welcome)
        let text = try #require(parts["text/plain"])
        let html = try #require(parts["text/html"])
        #expect(text.contains("Hello c-7,") && text.contains("you have reached 20 points"))
        #expect(text.contains("in touch at ann@example.com"))
        #expect(html.contains("<p>Hello c-7,</p>") && html.contains("<strong>20</strong> points"))
        let alert = try #require(messages.first { $0.contains("X-Tally-Template: mql-alert") })
        #expect(alert.contains("Subject: New MQL: c-7 (20 points)"))
        let alertText = try #require(try Self.parts(of: alert)["text/plain"])
        #expect(alertText.contains("fired the trigger \"Marketing qualified\" (mql)"))
    }

    @Test("E3: tally email preview NAME CONTACT prints the message as it would be sent; nothing is sent")
    func preview() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let reply = try daemon.post([JSON.event("email.open", contact: "c<8>", item: "n1")])
        let lastSeq = try #require(try reply.receipt.lastSeq)
        #expect(try daemon.contact("c<8>", after: lastSeq).document?.points == 10)
        let cli = try daemon.run(["email", "preview", "mql-welcome", "c<8>"])
        #expect(cli.status == 0, "\(cli.error)")
        #expect(cli.output.contains("Subject: Welcome aboard, c<8>\n"))
        #expect(cli.output.contains("Content-Type: multipart/alternative; boundary="))
        let parts = try Self.parts(of: cli.output)
        #expect(parts["text/plain"]?.contains("Hello c<8>,") == true)
        #expect(parts["text/plain"]?.contains("you have reached 10 points") == true)
        #expect(parts["text/html"]?.contains("<p>Hello c&lt;8&gt;,</p>") == true)
        let json = try daemon.run(["email", "preview", "mql-alert", "c<8>", "--json"])
        let document = try decode(EmailPreviewDocument.self, output: json.output)
        #expect(document.subject == "New MQL: c<8> (10 points)" && document.trigger == "mql")
        let missing = try daemon.run(["email", "preview", "nope", "c<8>"])
        #expect(missing.status != 0 && missing.error.contains("nope"))
        let outbox = try daemon.admin().request("GET", "/v1/outbox").decode(OutboxList.self)
        #expect(outbox.entries.isEmpty)
    }

    @Test("E2: tally rules check, publication and the start refuse a missing or unparsable template, with its line")
    func rulesCheck() throws {
        let scratch = "/tmp/tally-templates-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try "Subject: {{#open}}\n\nbody\n".write(toFile: scratch + "/mql-alert.txt", atomically: true, encoding: .utf8)
        let daemon = try Daemon(rules: Self.rules)
        // Offline, with the configuration's templates (the shipped ones): valid.
        let good = try daemon.run(["rules", "check", daemon.directory + "/rules.yaml"])
        #expect(good.status == 0, "\(good.error)")
        // --templates: mql-welcome is missing (line 9), mql-alert does not parse (line 10).
        let bad = try daemon.run(["rules", "check", daemon.directory + "/rules.yaml", "--templates", scratch])
        #expect(bad.status == 1)
        #expect(bad.error.contains("rules.yaml:9: trigger mql event welcome: email template \"mql-welcome\""))
        #expect(bad.error.contains("no such template file"))
        #expect(bad.error.contains("rules.yaml:10: trigger mql event alert: email template \"mql-alert\""))
        #expect(bad.error.contains("mql-alert.txt:1: Mustache syntax error"))
        // Publication through the daemon: 400 with the template's name and the line.
        try daemon.start()
        let broken = Self.rules.replacingOccurrences(of: "email: mql-welcome", with: "email: no-such-template")
        let publish = try daemon.admin().request(
            "PUT", "/v1/rules", body: Array(broken.utf8), contentType: "application/yaml")
        #expect(publish.status == 400)
        let detail = try publish.error
        #expect(detail.message.contains("\"no-such-template\"") && detail.line == 9)
        #expect(daemon.stop() == 0)
        // The start: refused, naming the template.
        try broken.write(toFile: daemon.directory + "/rules.yaml", atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try daemon.start() }
        #expect(daemon.log.contains("no-such-template"))
    }
}
