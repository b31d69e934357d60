import Foundation
import Testing

@testable import TallyDelivery

@Suite("SMTP replies")
struct SMTPReplyParserTests {
    @Test("single- and multi-line replies, split anywhere, with CRLF or bare LF")
    func multiLine() throws {
        let wire = Array("220 relay ready\r\n250-relay.example\r\n250-8BITMIME\r\n250 SMTPUTF8\n354\r\n".utf8)
        for split in 0...wire.count {
            var parser = SMTPReplyParser()
            var replies: [SMTPReply] = []
            for part in [wire[..<split], wire[split...]] {
                parser.append(part)
                while let reply = try parser.next() { replies.append(reply) }
            }
            #expect(
                replies == [
                    SMTPReply(code: 220, lines: ["relay ready"]),
                    SMTPReply(code: 250, lines: ["relay.example", "8BITMIME", "SMTPUTF8"]),
                    SMTPReply(code: 354, lines: [""]),
                ])
        }
    }

    @Test(
        "malformed replies are refused",
        arguments: ["hello\r\n", "25 short\r\n", "650 no such class\r\n", "250-a\r\n251 b\r\n", "250_x\r\n"])
    func malformed(wire: String) {
        var parser = SMTPReplyParser()
        parser.append(wire.utf8)
        #expect(throws: SMTPReplyParser.Malformed.self) {
            while try parser.next() != nil {}
        }
    }

    @Test("an endless line is refused")
    func endlessLine() {
        var parser = SMTPReplyParser()
        parser.append(Array(repeating: UInt8(ascii: "2"), count: SMTPReplyParser.maximumLineLength + 1))
        #expect(throws: SMTPReplyParser.Malformed.self) { try parser.next() }
    }
}

@Suite("Message encoding")
struct MessageEncodingTests {
    @Test("base64 of the RFC 4648 test vectors")
    func base64() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE="]
        for (plain, encoded) in vectors { #expect(MessageEncoding.base64(Array(plain.utf8)) == encoded) }
        #expect(MessageEncoding.base64(Array("foobar".utf8)) == "Zm9vYmFy")
    }

    @Test("encoded words hold whole characters, stay short and decode back")
    func encodedWords() throws {
        let subject = String(repeating: "Grüße 你好 🎉👩‍👩‍👧 ", count: 12)
        let words = MessageEncoding.encodedWords(subject)
        #expect(words.count > 1)
        var decoded = ""
        for word in words {
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            #expect(word.utf8.count <= 75)
            let data = try #require(Data(base64Encoded: String(word.dropFirst(10).dropLast(2))))
            decoded += try #require(String(data: data, encoding: .utf8), "a word splits a character")
        }
        #expect(decoded == subject)
    }

    @Test("ASCII subjects are sent as they are, unless they look like encoded words or are too long")
    func unstructuredHeader() {
        #expect(MessageEncoding.unstructuredHeader("Subject", "Hello") == "Subject: Hello")
        #expect(MessageEncoding.unstructuredHeader("Subject", "=?x?=").hasPrefix("Subject: =?UTF-8?B?"))
        let long = MessageEncoding.unstructuredHeader("Subject", String(repeating: "a", count: 1200))
        #expect(long.split(separator: "\r\n").allSatisfy { $0.utf8.count <= 78 })
    }

    @Test("dates are RFC 5322, in UTC, and agree with Foundation")
    func dates() {
        #expect(MessageEncoding.rfc5322Date(secondsSince1970: 0) == "Thu, 01 Jan 1970 00:00:00 +0000")
        #expect(MessageEncoding.rfc5322Date(secondsSince1970: -1) == "Wed, 31 Dec 1969 23:59:59 +0000")
        #expect(MessageEncoding.rfc5322Date(secondsSince1970: 951_782_400) == "Tue, 29 Feb 2000 00:00:00 +0000")
        #expect(MessageEncoding.rfc5322Date(secondsSince1970: 1_772_528_707) == "Tue, 03 Mar 2026 09:05:07 +0000")
        #expect(
            MessageEncoding.rfc5322Date(secondsSince1970: 253_402_300_799) == "Fri, 31 Dec 9999 23:59:59 +0000")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let seconds = Int64.random(in: -2_000_000_000...5_000_000_000, using: &generator)
            #expect(
                MessageEncoding.rfc5322Date(secondsSince1970: seconds)
                    == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))))
        }
    }

    @Test(
        "line ends: LF, CR and CRLF each end a line; a final line end does not start another",
        arguments: [
            ("", [String]()), ("a", ["a"]), ("a\n", ["a"]), ("a\r\nb\nc\rd", ["a", "b", "c", "d"]),
            ("a\n\n", ["a", ""]), ("\r\n\r\n", ["", ""]), ("a\r\r\nb", ["a", "", "b"]), ("a\n\rb", ["a", "", "b"]),
        ])
    func lines(body: String, expected: [String]) {
        #expect(MessageEncoding.lines(of: body).map { String(decoding: $0, as: UTF8.self) } == expected)
    }

    @Test("quoted-printable lines stay within 76 characters and keep escapes whole")
    func quotedPrintable() {
        let line = Array((String(repeating: "Grüße = ok ", count: 40) + "  ").utf8)
        let encoded = MessageEncoding.quotedPrintable(line)
        #expect(encoded.count > 1)
        for piece in encoded { #expect(piece.count <= 76) }
        #expect(encoded.dropLast().allSatisfy { $0.last == UInt8(ascii: "=") })
        let last = String(decoding: encoded.last ?? [], as: UTF8.self)
        #expect(last.hasSuffix(" =20"), "trailing white space is encoded")
        // Decode: drop soft breaks, then =XX.
        let joined = encoded.map { String(decoding: $0, as: UTF8.self) }
            .map { $0.hasSuffix("=") ? String($0.dropLast()) : $0 }.joined()
        var bytes: [UInt8] = []
        var index = joined.utf8.startIndex
        let utf8 = joined.utf8
        while index < utf8.endIndex {
            if utf8[index] == UInt8(ascii: "=") {
                let hex = String(
                    decoding: utf8[utf8.index(after: index)..<utf8.index(index, offsetBy: 3)], as: UTF8.self)
                bytes.append(UInt8(hex, radix: 16) ?? 0)
                index = utf8.index(index, offsetBy: 3)
            } else {
                bytes.append(utf8[index])
                index = utf8.index(after: index)
            }
        }
        #expect(bytes == line)
    }

    @Test("the DATA payload has CRLF line ends only, dot-stuffed lines and the terminating dot")
    func payload() {
        let message = EmailMessage(
            to: ["a@example.org", "b@example.org"], subject: "Grüße", body: ".x\n.\r\nplain\r..\n",
            headers: [("X-Tally-Idempotency-Key", "c/t/e")])
        let payload = MessageEncoding.dataPayload(
            of: message, sender: "tally@example.com", relayAccepts8Bit: true, heloName: "tally.localhost",
            now: 1_772_528_707)
        let text = String(decoding: payload, as: UTF8.self)
        #expect(text.hasSuffix("\r\n\r\n..x\r\n..\r\nplain\r\n...\r\n.\r\n"))
        #expect(text.hasPrefix("Date: Tue, 03 Mar 2026 09:05:07 +0000\r\nFrom: tally@example.com\r\n"))
        #expect(text.contains("\r\nTo: a@example.org, b@example.org\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"))
        #expect(text.contains("\r\nMessage-ID: <tally."))
        #expect(text.contains("@example.com>\r\nMIME-Version: 1.0\r\n"))
        #expect(text.contains("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"))
        #expect(text.contains("\r\nX-Tally-Idempotency-Key: c/t/e\r\n\r\n"))
        for (index, byte) in payload.enumerated() {
            if byte == 10 { #expect(index > 0 && payload[index - 1] == 13) }
            if byte == 13 { #expect(index + 1 < payload.count && payload[index + 1] == 10) }
        }
    }

    @Test("an empty body is an empty line and the terminating dot")
    func emptyBody() {
        let payload = MessageEncoding.dataPayload(
            of: EmailMessage(to: ["a@example.org"], subject: "s", body: ""), sender: "t@example.com",
            relayAccepts8Bit: true, heloName: "h", now: 0)
        #expect(String(decoding: payload, as: UTF8.self).hasSuffix("8bit\r\n\r\n.\r\n"))
    }

    @Test("addresses: the minimal checks")
    func addresses() {
        for good in ["a@b", "first.last+tag@example.org", "jürgen@bücher.example", "\"odd\"@example.org"] {
            #expect(MessageEncoding.problem(withAddress: good) == nil, "\(good)")
        }
        for bad in ["", "a", "a@", "@b", "a b@c", "a\r@b", "a\n@b", "<a@b>", "a@b>", "a\u{0}@b", "a\t@b"] {
            #expect(MessageEncoding.problem(withAddress: bad) != nil, "\(bad)")
        }
    }
}

@Suite("SMTPError")
struct SMTPErrorTests {
    @Test("permanent: invalid input and 5xx; transient: 4xx, timeouts, connection failures, odd replies")
    func permanence() {
        #expect(SMTPError(stage: .message, kind: .invalidInput).isPermanent)
        #expect(SMTPError(stage: .rcptTo, kind: .rejected, code: 550, serverText: "no").isPermanent)
        #expect(SMTPError(stage: .greeting, kind: .rejected, code: 554, serverText: "go away").isPermanent)
        #expect(!SMTPError(stage: .rcptTo, kind: .rejected, code: 451, serverText: "later").isPermanent)
        #expect(!SMTPError(stage: .greeting, kind: .rejected, code: 421, serverText: "closing").isPermanent)
        #expect(!SMTPError(stage: .data, kind: .unexpectedReply, code: 250).isPermanent)
        #expect(!SMTPError(stage: .connect, kind: .connectionFailed).isPermanent)
        #expect(!SMTPError(stage: .message, kind: .connectionClosed).isPermanent)
        #expect(!SMTPError(stage: .ehlo, kind: .timeout).isPermanent)
    }

    @Test("the description names the stage, the code, the server's text and the permanence")
    func description() {
        let error = SMTPError(stage: .rcptTo, kind: .rejected, code: 550, serverText: "5.1.1 no such user\nbye")
        #expect(error.description == "SMTP rcptTo failed, rejected 550 (permanent): 5.1.1 no such user / bye")
        #expect(
            SMTPError(stage: .connect, kind: .connectionFailed, detail: "connection refused").description
                == "SMTP connect failed, cannot connect (transient): connection refused")
    }

    @Test("durations become NIO time amounts")
    func timeAmount() {
        #expect(SMTPClient.timeAmount(.seconds(10)).nanoseconds == 10_000_000_000)
        #expect(SMTPClient.timeAmount(.milliseconds(1500)).nanoseconds == 1_500_000_000)
    }
}
