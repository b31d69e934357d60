import Foundation
import TallyDelivery
import Testing

/// Sends `message` and returns the error it throws, or records an issue when it does not throw.
func sendError(_ message: EmailMessage, via relay: SMTPRelay) async -> SMTPError? {
    do {
        try await SMTPClient().send(message, via: relay)
        Issue.record("sending succeeded, an error was expected")
        return nil
    } catch {
        return error
    }
}

@Suite(
    "SMTPClient against a real SMTP server (aiosmtpd)",
    .disabled(if: !aiosmtpdAvailable, Comment(rawValue: aiosmtpdMissing))
)
struct SMTPClientTests {
    static let handlers = """
        from aiosmtpd.handlers import Mailbox

        class Handler(Mailbox):
            # Refuses recipients whose local part starts with reject5 (550) or reject4 (451), and EHLO from
            # clients calling themselves old.example (502), to test the fallback to HELO.
            async def handle_EHLO(self, server, session, envelope, hostname, responses):
                if hostname == "old.example":
                    return ["502 5.5.1 EHLO not implemented"]
                session.host_name = hostname
                return responses

            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address.startswith("reject5"):
                    return "550 5.1.1 <" + address + ">: no such user"
                if address.startswith("reject4"):
                    return "451 4.3.0 mailbox busy, try later"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            @classmethod
            def from_cli(cls, parser, *args):
                return cls(args[0])
        """

    @Test("a plain message arrives with its envelope, headers and body")
    func plainMessage() async throws {
        let server = try SMTPServer()
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        let before = Date().timeIntervalSince1970
        try await SMTPClient().send(
            EmailMessage(
                to: ["owner@example.org"], subject: "Lead c-42 reached 100 points",
                body: "Contact c-42 reached 100 points.\nSee the audit trail.\n",
                headers: [("X-Tally-Idempotency-Key", "c-42/hot-lead/evt-9")]),
            via: relay)

        let mails = try server.messages()
        try #require(mails.count == 1)
        let mail = mails[0]
        #expect(mail.header("X-MailFrom") == "tally@example.com")
        #expect(mail.header("X-RcptTo") == "owner@example.org")
        #expect(mail.header("From") == "tally@example.com")
        #expect(mail.header("To") == "owner@example.org")
        #expect(mail.header("Subject") == "Lead c-42 reached 100 points")
        #expect(mail.rawHeader("Subject") == "Lead c-42 reached 100 points")
        #expect(mail.header("MIME-Version") == "1.0")
        #expect(mail.header("Content-Type") == "text/plain; charset=\"utf-8\"")
        #expect(mail.header("Content-Transfer-Encoding") == "8bit")
        #expect(mail.header("X-Tally-Idempotency-Key") == "c-42/hot-lead/evt-9")
        let messageID = try #require(mail.header("Message-ID"))
        #expect(messageID.hasPrefix("<") && messageID.hasSuffix("@example.com>"))
        let date = try #require(mail.date)
        #expect(date >= before.rounded(.down) - 1 && date <= Date().timeIntervalSince1970 + 1)
        #expect(mail.body == "Contact c-42 reached 100 points.\nSee the audit trail.\n")
        #expect(mail.defects.isEmpty)
    }

    @Test("a non-ASCII subject is RFC 2047 encoded and decodes back; a UTF-8 body arrives as 8bit")
    func nonASCIISubject() async throws {
        let server = try SMTPServer()
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        let subject = "Grüße aus Zürich — 你好 🎉 ein Kontakt hat die Schwelle überschritten: ½ der Punkte, ∑ = 100"
        try await SMTPClient().send(
            EmailMessage(to: ["owner@example.org"], subject: subject, body: "Schöne Grüße, 你好 🎉\n"), via: relay)

        let mail = try #require(try server.messages().first)
        #expect(mail.header("Subject") == subject)
        let raw = try #require(mail.rawHeader("Subject"))
        #expect(raw.hasPrefix("=?UTF-8?B?"))
        #expect(raw.contains("\n "), "a long subject is folded into several encoded words")
        #expect(mail.body == "Schöne Grüße, 你好 🎉\n")
        #expect(mail.header("Content-Transfer-Encoding") == "8bit")
        #expect(mail.defects.isEmpty)
    }

    @Test("lines starting with a dot survive dot-stuffing, and LF, CR and CRLF line ends all become line ends")
    func dotStuffingAndLineEnds() async throws {
        let server = try SMTPServer()
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        let body = ".hidden line\r\n.\n..two dots\rcarriage\r\n\r\nafter an empty line\n.\nlast without end"
        try await SMTPClient().send(
            EmailMessage(to: ["owner@example.org"], subject: "dots", body: body), via: relay)

        let mail = try #require(try server.messages().first)
        #expect(
            mail.body
                == ".hidden line\n.\n..two dots\ncarriage\n\nafter an empty line\n.\nlast without end\n")
        #expect(!mail.raw.contains("\r"))
        #expect(mail.raw.contains("\n.hidden line\n.\n..two dots\n"))
    }

    @Test("several recipients each get RCPT TO and are all listed in To")
    func severalRecipients() async throws {
        let server = try SMTPServer()
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        let recipients = (1...7).map { "sales-representative-\($0)@subsidiary-\($0).example.org" }
        try await SMTPClient().send(
            EmailMessage(from: "alerts@example.com", to: recipients, subject: "hot lead", body: "c-42\n"), via: relay
        )

        let mails = try server.messages()
        try #require(mails.count == 1)
        #expect(mails[0].header("X-MailFrom") == "alerts@example.com")
        #expect(mails[0].header("From") == "alerts@example.com")
        #expect(mails[0].header("X-RcptTo") == recipients.joined(separator: ", "))
        #expect(mails[0].toAddresses == recipients)
        #expect(mails[0].rawHeader("To")?.contains("\n ") == true, "a long To is folded")
        #expect(mails[0].defects.isEmpty)
    }

    @Test("a given Message-ID and Date replace the generated ones")
    func givenMessageID() async throws {
        let server = try SMTPServer()
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        try await SMTPClient().send(
            EmailMessage(
                to: ["owner@example.org"], subject: "s", body: "b",
                headers: [
                    ("Message-ID", "<c-42.hot-lead.evt-9@tally.example.com>"),
                    ("Date", "Tue, 03 Mar 2026 09:05:07 +0000"),
                ]),
            via: relay)

        let mail = try #require(try server.messages().first)
        #expect(mail.values("Message-ID") == ["<c-42.hot-lead.evt-9@tally.example.com>"])
        #expect(mail.values("Date") == ["Tue, 03 Mar 2026 09:05:07 +0000"])
    }

    @Test("a line longer than SMTP allows is sent quoted-printable and decodes back")
    func longLine() async throws {
        let server = try SMTPServer()
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        let long = String(repeating: "Grüße = 你好 . ", count: 200)
        let body = "short\n" + long + "\n.start\n"
        try await SMTPClient().send(
            EmailMessage(to: ["owner@example.org"], subject: "long", body: body), via: relay)

        let mail = try #require(try server.messages().first)
        #expect(mail.header("Content-Transfer-Encoding") == "quoted-printable")
        #expect(mail.body == body)
        #expect(mail.raw.split(separator: "\n").allSatisfy { $0.utf8.count <= 998 })
    }

    @Test("a relay that refuses EHLO gets HELO")
    func heloFallback() async throws {
        let server = try SMTPServer(handler: Self.handlers)
        let relay = SMTPRelay(
            host: "127.0.0.1", port: server.port, from: "tally@example.com", heloName: "old.example")
        try await SMTPClient().send(
            EmailMessage(to: ["owner@example.org"], subject: "helo", body: "plain ASCII\n"), via: relay)
        let mail = try #require(try server.messages().first)
        #expect(mail.header("Subject") == "helo")
        #expect(mail.body == "plain ASCII\n")
    }

    @Test("without 8BITMIME (after HELO) a UTF-8 body is sent quoted-printable")
    func no8BitMIME() async throws {
        let server = try SMTPServer(handler: Self.handlers)
        let relay = SMTPRelay(
            host: "127.0.0.1", port: server.port, from: "tally@example.com", heloName: "old.example")
        try await SMTPClient().send(
            EmailMessage(to: ["owner@example.org"], subject: "qp", body: "Grüße\n"), via: relay)
        let mail = try #require(try server.messages().first)
        #expect(mail.header("Content-Transfer-Encoding") == "quoted-printable")
        #expect(mail.body == "Grüße\n")
    }

    @Test("a 5xx refusal of a recipient is permanent and nothing is delivered")
    func permanentRefusal() async throws {
        let server = try SMTPServer(handler: Self.handlers)
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        let error = try #require(
            await sendError(
                EmailMessage(to: ["ok@example.org", "reject5@example.org"], subject: "s", body: "b"), via: relay))
        #expect(error.stage == .rcptTo)
        #expect(error.kind == .rejected)
        #expect(error.code == 550)
        #expect(error.serverText == "5.1.1 <reject5@example.org>: no such user")
        #expect(error.isPermanent)
        #expect(error.description.contains("550"))
        #expect(try server.messages().isEmpty)
    }

    @Test("a 4xx refusal is transient")
    func transientRefusal() async throws {
        let server = try SMTPServer(handler: Self.handlers)
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        let error = try #require(
            await sendError(EmailMessage(to: ["reject4@example.org"], subject: "s", body: "b"), via: relay))
        #expect(error.stage == .rcptTo)
        #expect(error.code == 451)
        #expect(!error.isPermanent)
        #expect(try server.messages().isEmpty)
    }

    @Test("a non-ASCII address goes with SMTPUTF8 when the relay offers it, and is refused permanently otherwise")
    func internationalAddress() async throws {
        let message = EmailMessage(to: ["jürgen@bücher.example"], subject: "s", body: "b")

        let withUTF8 = try SMTPServer(smtputf8: true)
        try await SMTPClient().send(
            message, via: SMTPRelay(host: "127.0.0.1", port: withUTF8.port, from: "tally@example.com"))
        let mail = try #require(try withUTF8.messages().first)
        #expect(mail.header("X-RcptTo") == "jürgen@bücher.example")
        #expect(mail.toAddresses == ["jürgen@bücher.example"])

        let without = try SMTPServer()
        let error = try #require(
            await sendError(message, via: SMTPRelay(host: "127.0.0.1", port: without.port, from: "tally@example.com")))
        #expect(error.stage == .mailFrom)
        #expect(error.kind == .invalidInput)
        #expect(error.isPermanent)
    }

    @Test("messages sent concurrently all arrive")
    func concurrentMessages() async throws {
        let server = try SMTPServer()
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, from: "tally@example.com")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for number in 1...10 {
                group.addTask {
                    try await SMTPClient().send(
                        EmailMessage(to: ["owner@example.org"], subject: "message \(number)", body: "\(number)\n"),
                        via: relay)
                }
            }
            try await group.waitForAll()
        }
        let subjects = try server.messages().compactMap { $0.header("Subject") }
        #expect(Set(subjects) == Set((1...10).map { "message \($0)" }))
    }
}

@Suite("SMTPClient failures without a server")
struct SMTPClientFailureTests {
    @Test("a refused connection is a transient connect error")
    func refusedConnection() async throws {
        let relay = SMTPRelay(host: "127.0.0.1", port: freeLoopbackPort(), from: "tally@example.com")
        let error = try #require(
            await sendError(EmailMessage(to: ["owner@example.org"], subject: "s", body: "b"), via: relay))
        #expect(error.stage == .connect)
        #expect(error.kind == .connectionFailed)
        #expect(error.code == nil)
        #expect(!error.isPermanent)
    }

    @Test("a relay that accepts the connection but never greets times out, transiently")
    func silentRelay() async throws {
        let listener = LoopbackListener(listening: true)
        let relay = SMTPRelay(
            host: "127.0.0.1", port: listener.port, from: "tally@example.com", timeout: .milliseconds(300))
        let error = try #require(
            await sendError(EmailMessage(to: ["owner@example.org"], subject: "s", body: "b"), via: relay))
        #expect(error.stage == .greeting)
        #expect(error.kind == .timeout)
        #expect(!error.isPermanent)
    }

    /// A closed port: had the client connected before validating, these would be connect errors.
    static let closedPortRelay = SMTPRelay(host: "127.0.0.1", port: freeLoopbackPort(), from: "tally@example.com")

    @Test(
        "CR or LF in the subject or a header value is refused before connecting, permanently",
        arguments: [
            EmailMessage(to: ["owner@example.org"], subject: "Hi\r\nBcc: victim@example.net", body: "b"),
            EmailMessage(to: ["owner@example.org"], subject: "Hi\nBcc: victim@example.net", body: "b"),
            EmailMessage(to: ["owner@example.org"], subject: "Hi\r", body: "b"),
            EmailMessage(
                to: ["owner@example.org"], subject: "s", body: "b",
                headers: [("X-Tally-Idempotency-Key", "k\r\nBcc: victim@example.net")]),
            EmailMessage(to: ["owner@example.org"], subject: "s", body: "b", headers: [("Bad Name", "v")]),
            EmailMessage(to: ["owner@example.org"], subject: "s", body: "b", headers: [("Subject", "again")]),
        ])
    func headerInjection(message: EmailMessage) async throws {
        let error = try #require(await sendError(message, via: Self.closedPortRelay))
        #expect(error.stage == .message)
        #expect(error.kind == .invalidInput)
        #expect(error.isPermanent)
    }

    @Test(
        "malformed addresses are refused before connecting, permanently",
        arguments: [
            "owner@example.org>\r\nRCPT TO:<victim@example.net", "owner@example.org\n", "<owner@example.org>",
            "no-at-sign", "@example.org", "owner@", "", "two words@example.org",
        ])
    func malformedRecipient(address: String) async throws {
        let error = try #require(
            await sendError(EmailMessage(to: [address], subject: "s", body: "b"), via: Self.closedPortRelay))
        #expect(error.stage == .rcptTo)
        #expect(error.kind == .invalidInput)
        #expect(error.isPermanent)
    }

    @Test("a malformed sender, no recipients, or a bad relay setting is refused before connecting")
    func otherInvalidInput() async throws {
        let message = EmailMessage(to: ["owner@example.org"], subject: "s", body: "b")
        var relay = Self.closedPortRelay
        relay.from = "tally\r\n@example.com"
        #expect(await sendError(message, via: relay)?.stage == .mailFrom)
        #expect(
            await sendError(EmailMessage(to: [], subject: "s", body: "b"), via: Self.closedPortRelay)?.stage
                == .rcptTo)
        relay = Self.closedPortRelay
        relay.heloName = "tally\r\nMAIL FROM:<x@y>"
        #expect(await sendError(message, via: relay)?.stage == .ehlo)
        relay = Self.closedPortRelay
        relay.port = 70_000
        #expect(await sendError(message, via: relay)?.kind == .invalidInput)
        relay = Self.closedPortRelay
        relay.timeout = .zero
        #expect(await sendError(message, via: relay)?.isPermanent == true)
    }
}
