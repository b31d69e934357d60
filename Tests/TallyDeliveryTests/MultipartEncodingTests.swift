import Testing

@testable import TallyDelivery

/// E3: with an HTML part the message is `multipart/alternative` (RFC 2046 §5.1), each part with its own type
/// and transfer encoding.
@Suite("Multipart encoding")
struct MultipartEncodingTests {
    static func payload(_ message: EmailMessage, relayAccepts8Bit: Bool = true, boundary: String? = "=_b") -> String {
        String(
            decoding: MessageEncoding.dataPayload(
                of: message, sender: "tally@example.com", relayAccepts8Bit: relayAccepts8Bit, heloName: "h",
                now: 0, boundary: boundary), as: UTF8.self)
    }

    @Test("E3: the text and the HTML part between boundaries, the closing boundary, then the terminating dot")
    func structure() {
        let text = Self.payload(
            EmailMessage(to: ["a@example.org"], subject: "s", body: "plain\n.dot\n", html: "<p>html</p>\n"))
        #expect(text.contains("\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"=_b\"\r\n"))
        #expect(text.contains("\r\nContent-Transfer-Encoding: 7bit\r\n"))
        #expect(
            text.hasSuffix(
                "\r\n\r\nThis is a multi-part message in MIME format.\r\n"
                    + "--=_b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                    + "plain\r\n..dot\r\n"
                    + "--=_b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                    + "<p>html</p>\r\n--=_b--\r\n.\r\n"))
    }

    @Test("E3: each part takes its own encoding: quoted-printable where needed, 8bit otherwise")
    func perPartEncoding() {
        let longLine = String(repeating: "<b>x</b>", count: 200)  // 1,600 bytes: past the line limit
        let text = Self.payload(
            EmailMessage(to: ["a@example.org"], subject: "s", body: "Grüße", html: longLine), relayAccepts8Bit: true)
        #expect(text.contains("charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n--=_b\r\n"))
        #expect(text.contains("text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"))
        // An 8bit part makes the whole entity 8bit (RFC 2045 §6.4).
        #expect(text.contains("boundary=\"=_b\"\r\nContent-Transfer-Encoding: 8bit\r\n"))
        for line in text.split(separator: "\r\n") { #expect(line.utf8.count <= 998) }
        // Without 8BITMIME the non-ASCII text is quoted-printable too, and the entity 7bit.
        let seven = Self.payload(
            EmailMessage(to: ["a@example.org"], subject: "s", body: "Grüße", html: "<p>ü</p>"),
            relayAccepts8Bit: false)
        #expect(seven.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n"))
        #expect(seven.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>=C3=BC</p>\r\n"))
        #expect(seven.contains("boundary=\"=_b\"\r\nContent-Transfer-Encoding: 7bit\r\n"))
        #expect(seven.utf8.allSatisfy { $0 < 0x80 })
    }

    @Test("E3: a random boundary by default, never one a body line starts with; no HTML: text/plain as before")
    func boundaries() {
        let first = MessageEncoding.newBoundary()
        #expect(first.hasPrefix("=_tally_") && first != MessageEncoding.newBoundary())
        let clash = Self.payload(
            EmailMessage(to: ["a@example.org"], subject: "s", body: "--=_b\n", html: "x"), boundary: "=_b")
        #expect(!clash.contains("boundary=\"=_b\""))
        let plain = Self.payload(EmailMessage(to: ["a@example.org"], subject: "s", body: "x"))
        #expect(plain.contains("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"))
        #expect(!plain.contains("multipart"))
    }

    @Test("E3: formatted() is the payload without dot-stuffing and the terminating dot")
    func formatted() {
        let message = EmailMessage(to: ["a@example.org"], subject: "s", body: ".x", html: "<p>y</p>")
        let text = message.formatted(defaultSender: "t@example.com", now: 0)
        #expect(text.contains("\r\nFrom: t@example.com\r\n"))
        #expect(text.contains("\r\n.x\r\n") && !text.contains("..x") && !text.hasSuffix(".\r\n"))
        #expect(text.contains("multipart/alternative"))
    }
}
