import Foundation
import TallyCore
import Testing

/// The `receivedAt` used throughout, so that defaulted `at` values are recognisable.
private let received: Int64 = 1_700_000_000_123
/// 2026-01-01T00:00:00Z in epoch milliseconds.
private let jan2026: Int64 = 1_767_225_600_000

private func decode(_ bytes: [UInt8], line: Int = 1) -> Result<Event, EventDecodingError> {
    bytes.withUnsafeBytes { raw in
        Result { () throws(EventDecodingError) -> Event in
            try EventDecoder(receivedAt: received).decode(raw, line: line)
        }
    }
}

private func decodeLines(_ bytes: [UInt8]) -> Result<[Event], EventDecodingError> {
    bytes.withUnsafeBytes { raw in
        Result { () throws(EventDecodingError) -> [Event] in try EventDecoder(receivedAt: received).decodeLines(raw) }
    }
}

/// The event decoded from `text`, recording an issue when it is rejected.
private func accepted(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Event? {
    switch decode(Array(text.utf8)) {
    case .success(let event): return event
    case .failure(let error):
        Issue.record("rejected \(text): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The error for `bytes`, recording an issue when they are accepted.
private func rejection(
    _ bytes: [UInt8], line: Int = 1, sourceLocation: SourceLocation = #_sourceLocation
)
    -> EventDecodingError?
{
    switch decode(bytes, line: line) {
    case .success(let event):
        Issue.record("accepted \(String(decoding: bytes, as: UTF8.self)) as \(event)", sourceLocation: sourceLocation)
        return nil
    case .failure(let error): return error
    }
}

/// Checks that `text` is rejected naming `field` on `line`.
private func expectRejected(
    _ text: String, field: String?, line: Int = 1, sourceLocation: SourceLocation = #_sourceLocation
) {
    expectRejected(Array(text.utf8), field: field, line: line, sourceLocation: sourceLocation)
}

private func expectRejected(
    _ bytes: [UInt8], field: String?, line: Int = 1, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let error = rejection(bytes, line: line, sourceLocation: sourceLocation) else { return }
    #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
    #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
    #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
}

/// `{"type":"email.open","item":"i","contact":"c"` + `rest` + `}`: a valid event with extra fields spliced in.
private func openWith(_ rest: String) -> String {
    #"{"type":"email.open","item":"i","contact":"c""# + rest + "}"
}

@Suite("EventDecoder: the ingest wire format (SPEC §1)")
struct EventDecoderTests {
    // MARK: Accepted events

    @Test("a minimal event of every behaviour type is accepted", arguments: behaviourTypes)
    func minimalEvents(type: EventType) throws {
        let extra = type.requiresItem ? #","item":"asset-1""# : #","url":"https://x.com/a""#
        let event = try #require(accepted(#"{"type":"\#(type.name)","contact":"c-1"\#(extra)}"#))
        #expect(event.type == type)
        #expect(event.contact == "c-1")
        #expect(event.at == received, "no at: when Tally received it")
        #expect(event.id == nil)
        #expect(event.session == nil)
        #expect(event.item == (type.requiresItem ? "asset-1" : nil))
        #expect(event.url == (type.requiresURL ? "https://x.com/a" : nil))
    }

    @Test("every type's wire name reads back as that type, and nothing else does")
    func typeNames() {
        for type in EventType.allCases { #expect(EventType(name: type.name) == type) }
        for name in ["", "url", "URL.hit", "url.hit ", "points", "rebuild.", "email.opened"] {
            #expect(EventType(name: name) == nil)
        }
    }

    @Test("all fields are read")
    func allFields() throws {
        let event = try #require(
            accepted(
                #"""
                  { "type" : "url.hit" , "contact":"c","at":"2026-01-01T00:00:00Z","id":"ev-1",
                    "url":"https://x.com/help?q=1","session":"s-9" }  
                """#))
        #expect(
            event
                == Event(
                    type: .urlHit, contact: "c", at: jan2026, id: "ev-1", url: "https://x.com/help?q=1", session: "s-9")
        )
    }

    @Test("item is kept only for item types and url only for url.hit")
    func irrelevantFieldsDropped() throws {
        let page = try #require(accepted(#"{"type":"page.hit","contact":"c","item":"p","url":"https://x.com/"}"#))
        #expect(page.item == "p")
        #expect(page.url == nil)
        let hit = try #require(accepted(#"{"type":"url.hit","contact":"c","item":"p","url":"https://x.com/"}"#))
        #expect(hit.item == nil)
        #expect(hit.url == "https://x.com/")
    }

    @Test(
        "at as an RFC 3339 string, with offsets and fractions",
        arguments: [
            ("2026-01-01T00:00:00Z", jan2026),
            ("2026-01-01T00:00:00.5Z", jan2026 + 500),
            ("2026-01-01T00:00:00.05Z", jan2026 + 50),
            ("2026-01-01T00:00:00.123456789Z", jan2026 + 123),
            ("2026-01-01T02:00:00+02:00", jan2026),
            ("2025-12-31T18:30:00-05:30", jan2026),
            ("2025-12-31T18:30:00.250-05:30", jan2026 + 250),
            ("2026-01-01t00:00:00z", jan2026),
            ("1969-07-20T20:17:40Z", -14_182_940_000),
            ("0001-01-01T00:00:00Z", Timestamp.validRange.lowerBound),
            ("9999-12-31T23:59:59.999Z", Timestamp.validRange.upperBound),
        ])
    func stringAt(text: String, millis: Int64) throws {
        let event = try #require(accepted(openWith(#","at":"\#(text)""#)))
        #expect(event.at == millis)
    }

    @Test(
        "at as integer epoch milliseconds",
        arguments: [
            ("1767225600000", jan2026), ("0", 0), ("-0", 0), ("-14182940000", -14_182_940_000), ("1", 1),
            ("253402300799999", Timestamp.validRange.upperBound),
            ("-62135596800000", Timestamp.validRange.lowerBound),
        ])
    func integerAt(text: String, millis: Int64) throws {
        let event = try #require(accepted(openWith(#","at":\#(text)"#)))
        #expect(event.at == millis)
    }

    @Test("unknown fields of any JSON shape are skipped")
    func unknownFieldsSkipped() throws {
        let values = [
            #""text""#, #""""#, "0", "-0", "12.5", "-1.25e-3", "1E+9", "2e10", "true", "false", "null", "[]", "{}",
            #"[1, "two", [3, {"four": null}], {}, []]"#,
            #"{"nested": {"deeper": [true, false, null, -0.0, "\u00e9\n"]}, "type": "not-checked"}"#,
            #""\ud83d\ude00 \" \\ \/""#,
            #""é😀""#,
        ]
        for value in values {
            let event = try #require(accepted(openWith(#","extra" : \#(value) , "more":\#(value)"#)), "\(value)")
            #expect(event.contact == "c")
            #expect(event.type == .emailOpen)
        }
        // Unknown fields may come first, and may repeat.
        let first = try #require(
            accepted(#"{"x":1,"x":{"type":"bogus"},"type":"form.submit","contact":"c","item":"f","x":[]}"#))
        #expect(first.type == .formSubmit)
    }

    @Test("null optional fields are treated as absent")
    func nullsAreAbsent() throws {
        let event = try #require(
            accepted(
                #"{"type":"url.hit","contact":"c","url":"https://x.com/","at":null,"id":null,"session":null,"item":null}"#
            ))
        #expect(event.at == received)
        #expect(event.id == nil)
        #expect(event.session == nil)
        #expect(event.item == nil)
        let page = try #require(accepted(#"{"type":"page.hit","contact":"c","item":"p","url":null}"#))
        #expect(page.url == nil)
    }

    @Test("string escapes are decoded, including \\u surrogate pairs")
    func escapes() throws {
        let cases: [(String, String)] = [
            (#"a\"b"#, "a\"b"), (#"a\\b"#, "a\\b"), (#"a\/b"#, "a/b"), (#"\b\f\n\r\t"#, "\u{8}\u{C}\n\r\t"),
            (#"caf\u00e9"#, "café"), (#"CAF\u00C9"#, "CAFÉ"), (#"\u0041\u0000"#, "A\u{0}"),
            (#"\ud83d\ude00"#, "😀"), (#"\uD83D\uDE00!"#, "😀!"), (#"x\udbff\udfffy"#, "x\u{10FFFF}y"),
            (#"\u20ac"#, "€"), ("plain é 😀 €", "plain é 😀 €"),
        ]
        for (escaped, expected) in cases {
            let event = try #require(accepted(#"{"type":"email.open","item":"i","contact":"\#(escaped)"}"#))
            #expect(event.contact == expected, "\(escaped)")
        }
        // Field names may be escaped too.
        let named = try #require(accepted(#"{"typ\u0065":"email.open","item":"i","\u0063ontact":"c"}"#))
        #expect(named.contact == "c")
    }

    @Test("size limits count UTF-8 bytes, inclusive")
    func sizeLimitBoundaries() throws {
        let contact = String(repeating: "a", count: 128)
        #expect(accepted(#"{"type":"email.open","item":"i","contact":"\#(contact)"}"#)?.contact == contact)
        let wide = String(repeating: "é", count: 64)  // 128 bytes, 64 characters
        #expect(accepted(#"{"type":"email.open","item":"i","contact":"\#(wide)"}"#)?.contact == wide)
        let url = "https://x.com/" + String(repeating: "p", count: 4096 - 14)
        #expect(accepted(#"{"type":"url.hit","contact":"c","url":"\#(url)"}"#)?.url == url)
        let item = String(repeating: "i", count: 256)
        #expect(accepted(#"{"type":"form.submit","contact":"c","item":"\#(item)"}"#)?.item == item)
        let id = String(repeating: "d", count: 128)
        #expect(accepted(openWith(#","id":"\#(id)","session":"\#(id)""#))?.id == id)
        // An escape counts as the bytes it decodes to: 128 × "\u0061" is 128 bytes.
        let escaped = String(repeating: #"\u0061"#, count: 128)
        #expect(accepted(#"{"type":"email.open","item":"i","contact":"\#(escaped)"}"#)?.contact == contact)
    }

    @Test("the line number passed to decode is the one reported")
    func explicitLine() {
        expectRejected(#"{"type":"nope","contact":"c"}"#, field: "type", line: 7)
    }

    // MARK: Rejected events

    @Test("an unknown type is rejected naming type")
    func unknownType() {
        for name in ["page.view", "", "URL.HIT", "url.hit ", "tags.modify", "contact.update"] {
            expectRejected(#"{"type":"\#(name)","contact":"c","item":"i","url":"https://x.com/"}"#, field: "type")
        }
    }

    @Test("missing required fields are rejected naming the field")
    func missingFields() {
        expectRejected(#"{"contact":"c","item":"i"}"#, field: "type")
        expectRejected(#"{"type":null,"contact":"c","item":"i"}"#, field: "type")
        expectRejected(#"{}"#, field: "type")
        expectRejected(#"{"type":"email.open","item":"i"}"#, field: "contact")
        expectRejected(#"{"type":"email.open","item":"i","contact":null}"#, field: "contact")
        for type in behaviourTypes where type.requiresItem {
            expectRejected(#"{"type":"\#(type.name)","contact":"c","url":"https://x.com/"}"#, field: "item")
            expectRejected(#"{"type":"\#(type.name)","contact":"c","item":null}"#, field: "item")
        }
        expectRejected(#"{"type":"url.hit","contact":"c","item":"i"}"#, field: "url")
        expectRejected(#"{"type":"url.hit","contact":"c","url":null}"#, field: "url")
    }

    @Test("a url.hit url must be absolute")
    func relativeURL() {
        for url in ["/help", "x.com/help", "", "//x.com/a", "mailto:a@b.c"] {
            expectRejected(#"{"type":"url.hit","contact":"c","url":"\#(url)"}"#, field: "url")
        }
    }

    @Test("wrong JSON types are rejected naming the field")
    func wrongTypes() {
        let base: [String: String] = [
            "type": #""email.open""#, "contact": #""c""#, "item": #""i""#,
        ]
        let wrong = ["1", "true", "false", "[]", "{}", #"["c"]"#, #"{"a":"b"}"#, "-1.5"]
        for field in ["type", "contact", "item", "id", "session"] {
            for value in wrong {
                var fields = base
                fields[field] = value
                let body = fields.sorted { $0.key < $1.key }.map { #""\#($0.key)":\#($0.value)"# }
                expectRejected("{" + body.joined(separator: ",") + "}", field: field)
            }
        }
        for value in ["true", "false", "[]", "{}", #"[1]"#, #"{"ms":1}"#] {
            expectRejected(openWith(#","at":\#(value)"#), field: "at")
        }
        for value in ["1", "true", "[]", "{}"] {
            expectRejected(#"{"type":"url.hit","contact":"c","url":\#(value)}"#, field: "url")
        }
    }

    @Test("oversized and empty strings are rejected naming the field")
    func oversized() {
        let contact = String(repeating: "a", count: 129)
        expectRejected(#"{"type":"email.open","item":"i","contact":"\#(contact)"}"#, field: "contact")
        let wide = String(repeating: "é", count: 65)  // 130 bytes, only 65 characters
        expectRejected(#"{"type":"email.open","item":"i","contact":"\#(wide)"}"#, field: "contact")
        let url = "https://x.com/" + String(repeating: "p", count: 4097 - 14)
        expectRejected(#"{"type":"url.hit","contact":"c","url":"\#(url)"}"#, field: "url")
        let item = String(repeating: "i", count: 257)
        expectRejected(#"{"type":"form.submit","contact":"c","item":"\#(item)"}"#, field: "item")
        let long = String(repeating: "d", count: 129)
        expectRejected(openWith(#","id":"\#(long)""#), field: "id")
        expectRejected(openWith(#","session":"\#(long)""#), field: "session")
        expectRejected(#"{"type":"email.open","item":"i","contact":""}"#, field: "contact")
        expectRejected(#"{"type":"email.open","item":"","contact":"c"}"#, field: "item")
        expectRejected(openWith(#","id":"""#), field: "id")
        expectRejected(openWith(#","session":"""#), field: "session")
    }

    @Test("invalid UTF-8 inside a string is rejected naming the field")
    func invalidUTF8() {
        let sequences: [[UInt8]] = [
            [0xFF], [0x80], [0xC0, 0xAF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xF8, 0x88, 0x80, 0x80, 0x80],
        ]
        for bad in sequences {
            let prefix = Array(#"{"type":"email.open","item":"i","contact":"ab"#.utf8)
            expectRejected(prefix + bad + Array(#"cd"}"#.utf8), field: "contact")
            // Also when the string has escapes, which takes the slow path.
            let escaped = Array(#"{"type":"email.open","item":"i","contact":"\n"#.utf8)
            expectRejected(escaped + bad + Array(#""}"#.utf8), field: "contact")
            // In an unknown field the error names that field.
            let unknown = Array(openWith(#","extra":["#).dropLast().utf8) + [0x22] + bad + Array(#""]}"#.utf8)
            expectRejected(unknown, field: "extra")
            // In a field name there is no field to name.
            expectRejected(
                Array(#"{"type":"email.open","item":"i","contact":"c",""#.utf8) + bad + Array(#"":1}"#.utf8), field: nil
            )
        }
    }

    @Test("a lone surrogate escape is rejected naming the field")
    func loneSurrogates() {
        for escape in [
            #"\ud800"#, #"\udc00"#, #"\udfff"#, #"\ud800x"#, #"\ud800\u0041"#, #"\ud800\ud800"#, #"\ude00\ud83d"#,
        ] {
            expectRejected(#"{"type":"email.open","item":"i","contact":"a\#(escape)"}"#, field: "contact")
            expectRejected(openWith(#","id":"\#(escape)""#), field: "id")
            expectRejected(openWith(#","misc":{"k":"\#(escape)"}"#), field: "misc")
        }
    }

    @Test("invalid escapes and control characters in strings are rejected")
    func invalidEscapes() {
        for escape in [#"\x41"#, #"\u12"#, #"\u12g4"#, #"\U0041"#, #"\'"#, #"\a"#, "\\\u{7}"] {
            expectRejected(#"{"type":"email.open","item":"i","contact":"a\#(escape)b"}"#, field: "contact")
        }
        for control in ["\t", "\u{0}", "\u{1F}", "\r"] {
            expectRejected(#"{"type":"email.open","item":"i","contact":"a\#(control)b"}"#, field: "contact")
        }
        expectRejected(#"{"type":"email.open","item":"i","contact":"abc}"#, field: "contact")
    }

    @Test(
        "bad timestamps are rejected naming at",
        arguments: [
            #""2026-13-01T00:00:00Z""#,  // month 13
            #""2026-00-01T00:00:00Z""#,  // month 0
            #""2026-02-30T00:00:00Z""#,  // February 30
            #""2025-02-29T00:00:00Z""#,  // not a leap year
            #""1900-02-29T00:00:00Z""#,  // century, not a leap year
            #""2026-04-31T00:00:00Z""#,
            #""2026-01-00T00:00:00Z""#,
            #""2025-12-31T23:59:60Z""#,  // leap second
            #""2026-01-01T24:00:00Z""#,
            #""2026-01-01T00:60:00Z""#,
            #""2026-01-01T00:00:00""#,  // missing timezone
            #""2026-01-01T00:00:00.123""#,
            #""2026-01-01""#,
            #""2026-01-01T00:00Z""#,
            #""2026-1-01T00:00:00Z""#,
            #""26-01-01T00:00:00Z""#,
            #""2026-01-01T00:00:00.Z""#,
            #""2026-01-01T00:00:00+2:00""#,
            #""2026-01-01T00:00:00+0200""#,
            #""2026-01-01T00:00:00+24:00""#,
            #""2026-01-01T00:00:00Z ""#,
            #"" 2026-01-01T00:00:00Z""#,
            #""2026-01-01T00:00:00ZZ""#,
            #""0000-01-01T00:00:00Z""#,
            #""0001-01-01T00:00:00+00:01""#,  // before year 1
            #""1767225600000""#,  // an integer in a string
            #""""#,
            "1.5",  // fraction in an integer at
            "1767225600000.0",
            "1e3",
            "1E3",
            "0123",  // leading zeros
            "-0123",
            "00",
            "-",
            "- 1",
            "+1",
            "9223372036854775808",  // overflows Int64
            "-9223372036854775809",
            "253402300800000",  // after year 9999
            "-62135596800001",  // before year 1
        ])
    func badTimestamps(value: String) {
        expectRejected(openWith(#","at":\#(value)"#), field: "at")
    }

    @Test("a field given twice is rejected naming the field")
    func fieldTwice() {
        expectRejected(#"{"type":"email.open","item":"i","contact":"a","contact":"b"}"#, field: "contact")
        expectRejected(#"{"type":"email.open","type":"email.open","item":"i","contact":"a"}"#, field: "type")
        expectRejected(openWith(#","at":1,"at":2"#), field: "at")
        expectRejected(openWith(#","id":null,"id":"x""#), field: "id")
        expectRejected(openWith(#","session":"s","session":null"#), field: "session")
        expectRejected(#"{"type":"email.open","item":"i","item":"i","contact":"a"}"#, field: "item")
        expectRejected(#"{"type":"url.hit","contact":"a","url":"https://a.b/","url":"https://a.b/"}"#, field: "url")
        // A name spelled with an escape is the same name.
        expectRejected(#"{"type":"email.open","item":"i","contact":"a","\u0063ontact":"b"}"#, field: "contact")
    }

    @Test("text after the object, or a body that is not one object, is rejected")
    func trailingGarbage() {
        let valid = #"{"type":"email.open","item":"i","contact":"c"}"#
        for suffix in [" x", "}", ",", valid, "[]", "null", "\u{0}"] {
            expectRejected(valid + suffix, field: nil)
        }
        for body in ["", "   ", "[]", #"[{"type":"email.open"}]"#, #""text""#, "null", "1", "{", "{,}", #"{"type"}"#] {
            guard let error = rejection(Array(body.utf8)) else { continue }
            #expect(error.line == 1)
        }
        expectRejected(#"{"type":"email.open","item":"i","contact":"c",}"#, field: nil)
        expectRejected(#"{"type":"email.open" "item":"i","contact":"c"}"#, field: nil)
        expectRejected(#"{type:"email.open","item":"i","contact":"c"}"#, field: nil)
        expectRejected(#"{'type':"email.open","item":"i","contact":"c"}"#, field: nil)
    }

    @Test("invalid JSON inside an unknown field is rejected naming that field")
    func invalidUnknownValues() {
        for value in [
            "tru", "nul", "True", "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "NaN", "[1,]", "[,1]", "{\"a\"}",
            "{\"a\":}", "{\"a\":1,}", "{a:1}", "[1 2]", "'x'", "\"unterminated",
        ] {
            let body = openWith(#","extra":\#(value)"#)
            guard let error = rejection(Array(body.utf8)) else { continue }
            #expect(error.line == 1)
            #expect(error.field == "extra" || error.field == nil, "\(value): \(error)")
        }
    }

    @Test("nesting deeper than EventDecoder.maximumDepth in an unknown field is rejected")
    func nestingDepth() throws {
        let depth = EventDecoder.maximumDepth
        // Well within the limit: accepted.
        let shallow = String(repeating: "[", count: depth - 1) + "1" + String(repeating: "]", count: depth - 1)
        #expect(accepted(openWith(#","deep":\#(shallow)"#)) != nil)
        let objects = String(repeating: #"{"k":"#, count: depth - 1) + "1" + String(repeating: "}", count: depth - 1)
        #expect(accepted(openWith(#","deep":\#(objects)"#)) != nil)
        // Beyond it: rejected, naming the field.
        for levels in [depth + 1, depth + 2, 100_000] {
            let arrays = String(repeating: "[", count: levels) + "1" + String(repeating: "]", count: levels)
            expectRejected(openWith(#","deep":\#(arrays)"#), field: "deep")
            let maps = String(repeating: #"{"k":"#, count: levels) + "1" + String(repeating: "}", count: levels)
            expectRejected(openWith(#","deep":\#(maps)"#), field: "deep")
            let mixed =
                String(repeating: #"[{"k":"#, count: levels / 2 + 1) + "1"
                + String(repeating: "}]", count: levels / 2 + 1)
            expectRejected(openWith(#","deep":\#(mixed)"#), field: "deep")
        }
        // Unbalanced deep openers are rejected too, without exhausting the stack.
        expectRejected(openWith(#","deep":\#(String(repeating: "[", count: 200_000))"#), field: "deep")
    }

    @Test("EventDecodingError describes the line and the field")
    func errorDescription() throws {
        let error = try #require(rejection(Array(#"{"type":"nope","contact":"c"}"#.utf8), line: 3))
        #expect(error.description.hasPrefix(#"line 3: field "type": "#))
        let noField = try #require(rejection(Array("[]".utf8), line: 2))
        #expect(noField.description.hasPrefix("line 2: "))
        #expect(!noField.description.contains("field"))
    }

    // MARK: NDJSON

    @Test("decodeLines reads one event per line and skips blank lines")
    func ndjsonBlankLines() throws {
        let body = """

            {"type":"email.open","item":"i","contact":"a"}
               \t
            {"type":"form.submit","item":"f","contact":"b","at":5}\r

            {"type":"url.hit","url":"https://x.com/","contact":"c"}
            """
        let events = try decodeLines(Array((body + "\n\n").utf8)).get()
        #expect(events.map(\.contact) == ["a", "b", "c"])
        #expect(events.map(\.type) == [.emailOpen, .formSubmit, .urlHit])
        #expect(events[1].at == 5)
        #expect(try decodeLines([]).get().isEmpty)
        #expect(try decodeLines(Array("\n\n \r\n".utf8)).get().isEmpty)
        // Without a final newline, and with CRLF line ends.
        let crlf =
            #"{"type":"email.open","item":"i","contact":"a"}"# + "\r\n"
            + #"{"type":"email.open","item":"i","contact":"b"}"#
        #expect(try decodeLines(Array(crlf.utf8)).get().map(\.contact) == ["a", "b"])
    }

    @Test("decodeLines names the failing line, counting blank lines")
    func ndjsonErrorLine() {
        let good = #"{"type":"email.open","item":"i","contact":"a"}"#
        let cases: [(lines: [String], line: Int, field: String?)] = [
            ([#"{"type":"nope","contact":"a"}"#], 1, "type"),
            ([good, #"{"type":"email.open","contact":"a"}"#], 2, "item"),
            ([good, "", "", #"{"type":"email.open","item":"i","contact":5}"#, good], 4, "contact"),
            (
                [
                    "", good, "  ", good, "", good,
                    #"{"type":"email.open","item":"i","contact":"a","at":"2026-02-30T00:00:00Z"}"#,
                ], 7, "at"
            ),
            ([good, good, good, "{", good], 4, nil),
            ([good, good, #"{"type":"email.open","item":"i","#, #""contact":"a"}"#], 3, nil),
            ([good, "   ", good, "garbage"], 4, nil),
        ]
        for (lines, line, field) in cases {
            let body = lines.joined(separator: "\n") + "\n"
            switch decodeLines(Array(body.utf8)) {
            case .success(let events):
                Issue.record("accepted \(events.count) events from \(lines)")
            case .failure(let error):
                #expect(error.line == line, "\(lines): \(error)")
                #expect(error.field == field, "\(lines): \(error)")
            }
        }
    }

    @Test("decodeLines reports the invalid UTF-8 line")
    func ndjsonInvalidUTF8Line() {
        let good = Array(#"{"type":"email.open","item":"i","contact":"a"}"#.utf8)
        let bad = Array(#"{"type":"email.open","item":"i","contact":"a"#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        let body = good + [0x0A, 0x0A] + good + [0x0A] + bad + [0x0A] + good
        switch decodeLines(body) {
        case .success: Issue.record("accepted invalid UTF-8")
        case .failure(let error):
            #expect(error.line == 4)
            #expect(error.field == "contact")
        }
    }

    // MARK: Differential test against JSONSerialization

    @Test("whenever JSONSerialization rejects a line as invalid JSON, EventDecoder rejects it too")
    func differentialAgainstJSONSerialization() throws {
        var random = SplitMix64(seed: 0x7A11_7E57)
        var invalidJSON = 0
        var bothAccepted = 0
        for caseNumber in 0..<3_000 {
            var bytes = Generator.eventLine(&random)
            if random.chance(3, in: 4) {
                for _ in 0..<random.int(in: 1...3) { Generator.mutate(&bytes, &random) }
            }
            let foundation: Any?
            do {
                foundation = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
            } catch {
                foundation = nil
            }
            let decoded = decode(bytes)
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            guard let foundation else {
                invalidJSON += 1
                if case .success(let event) = decoded {
                    Issue.record(
                        "case \(caseNumber): JSONSerialization rejects \(text) but EventDecoder accepts \(event)")
                }
                continue
            }
            guard case .success(let event) = decoded else { continue }
            bothAccepted += 1
            // Where both accept, they agree on the known string fields.
            let object = try #require(foundation as? [String: Any], "case \(caseNumber): \(text)")
            #expect(object["contact"] as? String == event.contact, "case \(caseNumber): \(text)")
            #expect(object["type"] as? String == event.type.name, "case \(caseNumber): \(text)")
            if let id = event.id { #expect(object["id"] as? String == id, "case \(caseNumber): \(text)") }
        }
        // The generator must produce plenty of both kinds for the comparison to mean something.
        #expect(invalidJSON >= 1_000, "only \(invalidJSON) invalid inputs")
        #expect(bothAccepted >= 500, "only \(bothAccepted) inputs accepted by both")
    }

    @Test("EventDecoder decides as the Foundation JSONDecoder reference does: same events, same rejections")
    func differentialAgainstReferenceDecoder() throws {
        var random = SplitMix64(seed: 0x0AC1_E5EE)
        var (agreedAccepted, agreedRejected, stricter) = (0, 0, 0)
        for caseNumber in 0..<5_000 {
            var bytes = Generator.eventLine(&random)
            if random.chance(1, in: 2) {
                for _ in 0..<random.int(in: 1...3) { Generator.mutate(&bytes, &random) }
            }
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            let reference = ReferenceEvent.event(bytes)
            switch (decode(bytes), reference) {
            case (.success(let event), let expected?):
                #expect(event == expected, "case \(caseNumber): \(text)")
                agreedAccepted += 1
            case (.success(let event), nil):
                Issue.record("case \(caseNumber): the reference rejects \(text), EventDecoder accepts \(event)")
            case (.failure(let error), let expected?):
                let byDesign = ReferenceEvent.stricterByDesign.contains { error.message.contains($0) }
                #expect(
                    byDesign, "case \(caseNumber): the reference accepts \(text) as \(expected), EventDecoder: \(error)"
                )
                stricter += 1
            case (.failure, nil):
                agreedRejected += 1
            }
        }
        #expect(agreedAccepted >= 1_000, "only \(agreedAccepted) accepted by both")
        #expect(agreedRejected >= 1_000, "only \(agreedRejected) rejected by both")
        #expect(stricter < 100, "\(stricter) inputs rejected only by EventDecoder")
    }
}

/// The oracle of the differential test: SPEC §1 written the obvious way on Foundation. `JSONSerialization` checks
/// that the line is JSON at all (`JSONDecoder` skips the values of keys it does not decode without validating
/// them), and `JSONDecoder` reads the fields. Slow and allocating freely; `EventDecoder` must decide as it does on
/// every input.
private struct ReferenceEvent: Decodable {
    enum At: Decodable {
        case millis(Int64)
        case text(String)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self = .text(text)
            } else {
                self = .millis(try container.decode(Int64.self))
            }
        }
    }

    var type: String?
    var contact: String?
    var at: At?
    var id: String?
    var item: String?
    var url: String?
    var session: String?

    /// The event SPEC §1 makes of `bytes`, or nil when it rejects them.
    static func event(_ bytes: [UInt8]) -> Event? {
        guard (try? JSONSerialization.jsonObject(with: Data(bytes))) != nil, !hasTrailingComma(bytes),
            let raw = try? JSONDecoder().decode(ReferenceEvent.self, from: Data(bytes)),
            let name = raw.type, let type = EventType(name: name), type.isBehaviour,
            let contact = raw.contact, EventLimits.contact.contains(contact.utf8.count)
        else { return nil }
        let limited: [(String?, ClosedRange<Int>)] = [
            (raw.id, EventLimits.id), (raw.item, EventLimits.item), (raw.url, EventLimits.url),
            (raw.session, EventLimits.session),
        ]
        for case (let value?, let limit) in limited where !limit.contains(value.utf8.count) { return nil }
        if type.requiresItem, raw.item == nil { return nil }
        if type.requiresURL {
            guard let url = raw.url, URLPattern.isAbsolute(url) else { return nil }
        }
        let at: Int64
        switch raw.at {
        case nil: at = received
        case .millis(let millis):
            guard Timestamp.validRange.contains(millis) else { return nil }
            at = millis
        case .text(let text):
            guard let millis = Array(text.utf8).withUnsafeBytes({ Timestamp.parse($0) }) else { return nil }
            at = millis
        }
        return Event(
            type: type, contact: contact, at: at, id: raw.id, item: type.requiresItem ? raw.item : nil,
            url: type.requiresURL ? raw.url : nil, session: raw.session)
    }

    /// Whether a `,` outside strings is followed by `]` or `}`: RFC 8259 forbids it, Foundation's parser
    /// tolerates it.
    static func hasTrailingComma(_ bytes: [UInt8]) -> Bool {
        var (inString, escaped) = (false, false)
        for (index, byte) in bytes.enumerated() {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == 0x5C {
                    escaped = true
                } else if byte == 0x22 {
                    inString = false
                }
                continue
            }
            if byte == 0x22 { inString = true }
            guard byte == 0x2C else { continue }
            let next = bytes[(index + 1)...].first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
            if next == 0x5D || next == 0x7D { return true }
        }
        return false
    }

    /// Where `EventDecoder` is stricter than `JSONDecoder` on purpose: a known field given twice (which
    /// `JSONDecoder` resolves silently), and an `at` number written with a fraction or exponent that `JSONDecoder`
    /// still reads as an integer.
    static let stricterByDesign = ["given twice", "must be whole milliseconds", "must not have leading zeros"]
}

/// Seeded generators of event lines and of damage to them.
private enum Generator {
    static let typeNames = behaviourTypes.map(\.name) + ["page.view", "contact.update"]
    static let stringPieces = [
        "a", "Z", "0", "-", " ", "é", "😀", "€", #"\""#, #"\\"#, #"\/"#, #"\n"#, #"\t"#, #"\u00e9"#, #"\u0041"#,
        #"\ud83d\ude00"#, #"\uD834\uDD1E"#, "/", "?", "#", ":",
    ]
    static let damage: [UInt8] =
        Array(#"{}[]":,\/u019-+.eEtfnl "#.utf8) + [
            0x09, 0x0A, 0x0D, 0x00, 0x01, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF, 0x61,
            0x27,
        ]

    static func string(_ random: inout SplitMix64) -> String {
        var text = "\""
        for _ in 0..<random.int(in: 1...8) { text += random.pick(stringPieces) }
        return text + "\""
    }

    static func number(_ random: inout SplitMix64) -> String {
        var text = random.chance(1, in: 3) ? "-" : ""
        text += random.chance(1, in: 4) ? "0" : String(random.int(in: 1...99_999))
        if random.chance(1, in: 3) { text += "." + String(random.int(in: 0...999)) }
        if random.chance(1, in: 4) {
            text += random.pick(["e", "E", "e+", "e-", "E-"]) + String(random.int(in: 0...20))
        }
        return text
    }

    /// Near-misses of JSON scalars, mostly invalid.
    static let nearMisses = [
        "1.", ".5", "01", "-01", "-", "+1", "1e", "1e+", "1.e5", "0x1F", "NaN", "Infinity", "-Infinity", "tru",
        "True", "nul", "NULL", "falsey", "'x'", "1_000", "0.0.1", "--1", "1-", "\"\\x\"", "\"\\u12\"", "[1,]",
        "{\"a\":1,}", "[,]", "{\"a\" 1}", "{1:2}", "undefined",
    ]

    static func value(_ random: inout SplitMix64, depth: Int) -> String {
        if random.chance(1, in: 12) { return random.pick(nearMisses) }
        switch random.int(in: depth >= 3 ? 0...4 : 0...6) {
        case 0: return string(&random)
        case 1: return number(&random)
        case 2: return random.pick(["true", "false"])
        case 3: return "null"
        case 4: return string(&random)
        case 5:
            let count = random.int(in: 0...3)
            return "["
                + (0..<count).map { _ in space(&random) + value(&random, depth: depth + 1) }.joined(separator: ",")
                + "]"
        default:
            let count = random.int(in: 0...3)
            return "{"
                + (0..<count).map { _ in string(&random) + space(&random) + ":" + value(&random, depth: depth + 1) }
                .joined(separator: ",") + "}"
        }
    }

    static func space(_ random: inout SplitMix64) -> String {
        random.chance(3, in: 4) ? "" : random.pick([" ", "  ", "\t", " \r "])
    }

    static func timestamp(_ random: inout SplitMix64) -> String {
        if random.chance(1, in: 2) { return String(random.int64(in: -1_000_000_000_000...2_000_000_000_000)) }
        let millis = random.int64(in: 0...2_000_000_000_000)
        return "\"" + Timestamp.format(millis) + "\""
    }

    /// A line that is usually a valid event (and always close to one).
    static func eventLine(_ random: inout SplitMix64) -> [UInt8] {
        let type = random.chance(9, in: 10) ? random.pick(behaviourTypes.map(\.name)) : random.pick(typeNames)
        var fields: [(String, String)] = [("type", "\"\(type)\""), ("contact", string(&random))]
        if type == "url.hit" {
            fields.append(("url", "\"https://x.com/" + random.pick(["", "a", "help?q=1", "p#f"]) + "\""))
        } else {
            fields.append(("item", string(&random)))
        }
        if random.chance(1, in: 2) { fields.append(("at", timestamp(&random))) }
        if random.chance(1, in: 3) { fields.append(("id", string(&random))) }
        if random.chance(1, in: 4) { fields.append(("session", random.chance(1, in: 4) ? "null" : string(&random))) }
        for _ in 0..<random.int(in: 0...3) {
            fields.append(
                (
                    random.pick(["x", "extra", "meta", "ua", "_"]) + String(random.int(in: 0...99)),
                    value(&random, depth: 0)
                ))
        }
        // Shuffle deterministically.
        for index in stride(from: fields.count - 1, to: 0, by: -1) {
            fields.swapAt(index, random.int(in: 0...index))
        }
        let body = fields.map { key, value in
            space(&random) + "\"" + key + "\"" + space(&random) + ":" + space(&random) + value + space(&random)
        }
        return Array((space(&random) + "{" + body.joined(separator: ",") + "}" + space(&random)).utf8)
    }

    /// Damages `bytes` in one of several ways.
    static func mutate(_ bytes: inout [UInt8], _ random: inout SplitMix64) {
        guard !bytes.isEmpty else {
            bytes.append(random.pick(damage))
            return
        }
        let position = random.int(in: 0...(bytes.count - 1))
        switch random.int(in: 0...5) {
        case 0: bytes.remove(at: position)
        case 1: bytes.insert(random.pick(damage), at: position)
        case 2: bytes[position] = random.pick(damage)
        case 3: bytes.removeSubrange(position...)
        case 4:
            let end = min(bytes.count, position + random.int(in: 1...6))
            bytes.insert(contentsOf: bytes[position..<end], at: position)
        default:
            let other = random.int(in: 0...(bytes.count - 1))
            bytes.swapAt(position, other)
        }
    }
}
