/// Why an ingest request was rejected: the line (1-based) and the field at fault (SPEC §1).
public struct EventDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line of the request body; 1 for a single JSON document.
    public var line: Int
    /// The offending field, or nil when the line is not a JSON object at all.
    public var field: String?
    public var message: String
    /// The line names an administrative event type, which only the admin endpoints create (answered 403).
    public var isAdministrative: Bool

    public init(line: Int, field: String?, message: String, isAdministrative: Bool = false) {
        self.line = line
        self.field = field
        self.message = message
        self.isAdministrative = isAdministrative
    }

    public var description: String {
        if let field { return "line \(line): field \"\(field)\": \(message)" }
        return "line \(line): \(message)"
    }
}

/// A strict byte-level decoder for the ingest wire format: one flat JSON object per event.
///
/// Hand-written rather than `JSONDecoder` because ingest speed is bounded by decoding (DESIGN.md) and because
/// a rejection must name the line and the field. Unknown fields are skipped (any JSON value, nested at most
/// ``maximumDepth`` deep); known fields are checked for type, size and UTF-8 validity; a field given twice is
/// an error; `null` counts as absent.
public struct EventDecoder: Sendable {
    /// Deepest nesting accepted inside unknown fields.
    public static let maximumDepth = 32

    /// Event time given to events without `at`: when Tally received them.
    public var receivedAt: Int64

    public init(receivedAt: Int64) {
        self.receivedAt = receivedAt
    }

    /// Decodes the body of `POST /v1/events`: one JSON object when `contentType` is `application/json`,
    /// otherwise NDJSON whose lines are at most `maxLineBytes` long.
    public func decodeBody(
        _ body: UnsafeRawBufferPointer, contentType: String, maxLineBytes: Int
    )
        throws(EventDecodingError) -> [Event]
    {
        if contentType.lowercased().hasPrefix("application/json") { return [try decode(body)] }
        try Self.checkLineLengths(body, limit: maxLineBytes)
        return try decodeLines(body)
    }

    /// Refuses a body with a line longer than `limit` bytes, naming the line.
    static func checkLineLengths(_ bytes: UnsafeRawBufferPointer, limit: Int) throws(EventDecodingError) {
        var line = 1
        var start = 0
        for (offset, byte) in bytes.enumerated() where byte == 0x0A {
            if offset - start > limit {
                throw EventDecodingError(line: line, field: nil, message: "line longer than \(limit) bytes")
            }
            line += 1
            start = offset + 1
        }
        if bytes.count - start > limit {
            throw EventDecodingError(line: line, field: nil, message: "line longer than \(limit) bytes")
        }
    }

    /// Decodes a body of newline-delimited JSON objects; blank lines are skipped.
    public func decodeLines(_ body: UnsafeRawBufferPointer) throws(EventDecodingError) -> [Event] {
        var events: [Event] = []
        try forEachLine(body) { (slice, line) throws(EventDecodingError) in
            events.append(try decode(slice, line: line))
        }
        return events
    }

    /// Decodes one JSON object (which may span lines) as one event.
    public func decode(_ bytes: UnsafeRawBufferPointer, line: Int = 1) throws(EventDecodingError) -> Event {
        var parser = Parser(bytes: bytes, line: line)
        return try parser.event(receivedAt: receivedAt)
    }

    /// Decodes the body of `POST /v1/events` as ``decodeBody(_:contentType:maxLineBytes:)`` does, with the same
    /// errors, into the events' log records (``PackedEvents``): the ingest path, which makes no `String` or
    /// ``Event`` of a field it only checks and copies.
    public func packBody(
        _ body: UnsafeRawBufferPointer, contentType: String, maxLineBytes: Int
    )
        throws(EventDecodingError) -> PackedEvents
    {
        var packed = PackedEvents()
        // Room for every record (never longer than its line) and entry up front: two allocations per request.
        packed.reserveCapacity(bytes: body.count, events: body.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 })
        func pack(_ bytes: UnsafeRawBufferPointer, line: Int) throws(EventDecodingError) {
            var parser = Parser(bytes: bytes, line: line)
            let event = try parser.parse(receivedAt: receivedAt)
            packed.append(event, from: parser)
        }
        if contentType.lowercased().hasPrefix("application/json") {
            try pack(body, line: 1)
        } else {
            try Self.checkLineLengths(body, limit: maxLineBytes)
            try forEachLine(body) { (slice, line) throws(EventDecodingError) in try pack(slice, line: line) }
        }
        return packed
    }

    /// Visits the lines of an NDJSON body that are not blank, with their 1-based numbers.
    private func forEachLine(
        _ body: UnsafeRawBufferPointer, _ visit: (UnsafeRawBufferPointer, Int) throws(EventDecodingError) -> Void
    ) throws(EventDecodingError) {
        var start = 0
        var line = 1
        while start < body.count {
            var end = start
            while end < body.count, body[end] != 0x0A { end += 1 }
            let slice = UnsafeRawBufferPointer(rebasing: body[start..<end])
            if !slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { try visit(slice, line) }
            start = end + 1
            line += 1
        }
    }
}

/// Where a string field's UTF-8 bytes are, checked: in the decoded bytes, or, for a string with escapes, unescaped
/// in the parser's scratch buffer.
struct RawText {
    var start: Int
    var count: Int
    var unescaped: Bool
}

/// One event as the parser read it: its strings still bytes (``RawText``).
struct ParsedEvent {
    var type: EventType
    var at: Int64
    var contact: RawText
    var id: RawText?
    var item: RawText?
    var url: RawText?
    var session: RawText?
}

struct Parser {
    let bytes: UnsafeRawBufferPointer
    let line: Int
    var index = 0
    /// The unescaped bytes of the strings that had escapes (``RawText/unescaped``); empty, unallocated, for the rest.
    var scratch: [UInt8] = []

    init(bytes: UnsafeRawBufferPointer, line: Int) {
        self.bytes = bytes
        self.line = line
    }

    func fail(_ field: String?, _ message: String) -> EventDecodingError {
        EventDecodingError(line: line, field: field, message: message)
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func event(receivedAt: Int64) throws(EventDecodingError) -> Event {
        let parsed = try parse(receivedAt: receivedAt)
        return Event(
            type: parsed.type, contact: string(parsed.contact), at: parsed.at, id: parsed.id.map(string),
            item: parsed.item.map(string), url: parsed.url.map(string), session: parsed.session.map(string))
    }

    /// Reads and checks one event. An `item` or a `url` its type does not take is left out.
    mutating func parse(receivedAt: Int64) throws(EventDecodingError) -> ParsedEvent {
        var type: EventType?
        var contact: RawText?
        var at: Int64?
        var id: RawText?
        var item: RawText?
        var url: RawText?
        var session: RawText?
        var seen: UInt8 = 0  // a bit per known field (`Field`), to refuse one given twice

        guard consume(0x7B) else { throw fail(nil, "expected a JSON object") }
        if !consume(0x7D) {
            repeat {
                skipWhitespace()
                guard peek == 0x22 else { throw fail(nil, "expected a field name in double quotes") }
                // Field names and the type are matched as bytes: a `String` is made only for an error's message.
                let name = try text(field: nil)
                guard consume(0x3A) else { throw fail(string(name), "expected ':' after the field name") }
                skipWhitespace()
                guard let field = withBytes(name, Field.init(bytes:)) else {
                    try skipValue(field: string(name), depth: 0)
                    continue
                }
                let key = field.name
                guard seen & field.rawValue == 0 else { throw fail(key, "given twice") }
                seen |= field.rawValue
                if consumeNull() { continue }
                switch field {
                case .type:
                    guard peek == 0x22 else { throw fail(key, "must be a string") }
                    let text = try text(field: key)
                    guard let value = withBytes(text, EventType.init(nameBytes:)) else {
                        throw fail(key, "unknown event type \"\(string(text))\"")
                    }
                    guard value.isBehaviour else {
                        var error = fail(key, "\(value.name) is administrative: only the admin API creates it")
                        error.isAdministrative = true
                        throw error
                    }
                    type = value
                case .contact: contact = try textValue(field: key, limit: EventLimits.contact)
                case .id: id = try textValue(field: key, limit: EventLimits.id)
                case .item: item = try textValue(field: key, limit: EventLimits.item)
                case .url: url = try textValue(field: key, limit: EventLimits.url)
                case .session: session = try textValue(field: key, limit: EventLimits.session)
                case .at: at = try timestamp()
                }
            } while consume(0x2C)
            guard consume(0x7D) else { throw fail(nil, "expected ',' or '}' after a field") }
        }
        skipWhitespace()
        guard index == bytes.count else { throw fail(nil, "unexpected text after the JSON object") }

        guard let type else {
            throw fail("type", seen & Field.type.rawValue != 0 ? "must not be null" : "is required")
        }
        guard let contact else { throw fail("contact", "is required") }
        if type.requiresItem, item == nil { throw fail("item", "is required for \(type.name)") }
        if type.requiresURL {
            guard let url else { throw fail("url", "is required for \(type.name)") }
            guard withBytes(url, { URLPattern.isAbsolute(bytes: $0) }) else {
                throw fail("url", "must be an absolute URL (scheme://…)")
            }
        }
        return ParsedEvent(
            type: type, at: at ?? receivedAt, contact: contact, id: id, item: type.requiresItem ? item : nil,
            url: type.requiresURL ? url : nil, session: session)
    }

    /// Runs `body` over the bytes of `text`.
    func withBytes<T>(_ text: RawText, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        guard text.unescaped else {
            return body(UnsafeRawBufferPointer(rebasing: bytes[text.start..<(text.start + text.count)]))
        }
        return scratch.withUnsafeBytes { scratch in
            body(UnsafeRawBufferPointer(rebasing: scratch[text.start..<(text.start + text.count)]))
        }
    }

    /// The text as a `String` (its bytes are valid UTF-8: checked when read).
    func string(_ text: RawText) -> String {
        withBytes(text) { String(decoding: $0, as: UTF8.self) }
    }

    /// The fields SPEC §1 defines, each a bit of the mask that refuses a field given twice; other fields are
    /// skipped.
    enum Field: UInt8, CaseIterable {
        case type = 1, contact = 2, at = 4, id = 8, item = 16, url = 32, session = 64

        /// The field's name in the wire format.
        var name: String {
            switch self {
            case .type: "type"
            case .contact: "contact"
            case .at: "at"
            case .id: "id"
            case .item: "item"
            case .url: "url"
            case .session: "session"
            }
        }

        /// The field named by `bytes`, compared as bytes; nil for a field SPEC §1 does not define.
        init?(bytes: UnsafeRawBufferPointer) {
            guard let field = Self.names.value(named: bytes) else { return nil }
            self = field
        }

        private static let names = ByteNames(allCases, name: \.name)
    }

    mutating func consumeNull() -> Bool {
        guard index + 4 <= bytes.count, bytes[index] == 0x6E, bytes[index + 1] == 0x75, bytes[index + 2] == 0x6C,
            bytes[index + 3] == 0x6C
        else { return false }
        index += 4
        return true
    }

    /// A string field's bytes, checked to be `limit` bytes long.
    mutating func textValue(field: String, limit: ClosedRange<Int>) throws(EventDecodingError) -> RawText {
        guard peek == 0x22 else { throw fail(field, "must be a string") }
        let value = try text(field: field)
        if !limit.contains(value.count) {
            throw fail(field, "must be \(limit.lowerBound)–\(limit.upperBound) bytes long, is \(value.count)")
        }
        return value
    }

    mutating func timestamp() throws(EventDecodingError) -> Int64 {
        if peek == 0x22 {
            let value = try text(field: "at")
            // Escapes never occur in a valid timestamp.
            guard !value.unescaped, let millis = withBytes(value, Timestamp.parse) else {
                throw fail("at", "must be an RFC 3339 date-time or integer epoch milliseconds")
            }
            return millis
        }
        var negative = false
        if peek == 0x2D {
            negative = true
            index += 1
        }
        if peek == 0x30, index + 1 < bytes.count, bytes[index + 1] >= 0x30, bytes[index + 1] <= 0x39 {
            throw fail("at", "must not have leading zeros")
        }
        var value: Int64 = 0
        var digitCount = 0
        while let byte = peek, byte >= 0x30, byte <= 0x39 {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(Int64(byte - 0x30))
            guard !o1, !o2 else { throw fail("at", "is out of range") }
            value = sum
            digitCount += 1
            index += 1
        }
        guard digitCount > 0 else {
            throw fail("at", "must be an RFC 3339 date-time or integer epoch milliseconds")
        }
        if let byte = peek, byte == 0x2E || byte == 0x65 || byte == 0x45 {
            throw fail("at", "must be whole milliseconds, without a fraction or exponent")
        }
        let millis = negative ? -value : value
        guard Timestamp.validRange.contains(millis) else { throw fail("at", "is out of range") }
        return millis
    }

    /// Reads a JSON string starting at the opening quote, validating escapes and UTF-8.
    mutating func string(field: String?) throws(EventDecodingError) -> String {
        let value = try text(field: field)  // first: the call below must see the scratch buffer it extended
        return string(value)
    }

    /// Reads a JSON string starting at the opening quote, validating escapes and UTF-8, without making a `String`:
    /// where its bytes are, in ``bytes`` or (with escapes) unescaped at the end of ``scratch``.
    mutating func text(field: String?) throws(EventDecodingError) -> RawText {
        index += 1  // opening quote
        let start = index
        var hasEscape = false
        while true {
            guard index < bytes.count else { throw fail(field, "unterminated string") }
            let byte = bytes[index]
            if byte == 0x22 { break }
            if byte < 0x20 { throw fail(field, "control character in a string") }
            if byte == 0x5C {
                hasEscape = true
                index += 2
                continue
            }
            index += 1
        }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        index += 1  // closing quote
        if !hasEscape {
            guard UTF8Text.isValid(raw) else { throw fail(field, "invalid UTF-8") }
            return RawText(start: start, count: raw.count, unescaped: false)
        }
        // Unescaped onto the end of the scratch buffer (taken out of `self` meanwhile, so that it is not copied).
        let first = scratch.count
        var out: [UInt8] = []
        swap(&out, &scratch)
        defer { swap(&out, &scratch) }
        out.reserveCapacity(first + raw.count)
        var i = 0
        while i < raw.count {
            let byte = raw[i]
            guard byte == 0x5C else {
                out.append(byte)
                i += 1
                continue
            }
            guard i + 1 < raw.count else { throw fail(field, "invalid escape") }
            i += 2
            switch raw[i - 1] {
            case 0x22: out.append(0x22)
            case 0x5C: out.append(0x5C)
            case 0x2F: out.append(0x2F)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = try hex4(raw, &i, field)
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < raw.count, raw[i] == 0x5C, raw[i + 1] == 0x75 else {
                        throw fail(field, "unpaired surrogate in \\u escape")
                    }
                    i += 2
                    let low = try hex4(raw, &i, field)
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail(field, "unpaired surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail(field, "unpaired surrogate in \\u escape")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw fail(field, "invalid \\u escape") }
                out.append(contentsOf: UTF8.encode(unicode).map { Array($0) } ?? [])
            default:
                throw fail(field, "invalid escape")
            }
        }
        guard out.withUnsafeBytes({ UTF8Text.isValid(UnsafeRawBufferPointer(rebasing: $0[first...])) }) else {
            throw fail(field, "invalid UTF-8")
        }
        return RawText(start: first, count: out.count - first, unescaped: true)
    }

    func hex4(_ raw: UnsafeRawBufferPointer, _ i: inout Int, _ field: String?) throws(EventDecodingError) -> UInt32 {
        guard i + 4 <= raw.count else { throw fail(field, "invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = raw[i]
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: throw fail(field, "invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            i += 1
        }
        return value
    }

    /// Skips any JSON value of an unknown field, still validating it.
    mutating func skipValue(field: String, depth: Int) throws(EventDecodingError) {
        guard depth < EventDecoder.maximumDepth else { throw fail(field, "nested too deeply") }
        skipWhitespace()
        guard let byte = peek else { throw fail(field, "expected a value") }
        switch byte {
        case 0x22:
            _ = try text(field: field)
        case 0x7B:
            index += 1
            if consume(0x7D) { return }
            repeat {
                skipWhitespace()
                guard peek == 0x22 else { throw fail(field, "expected a field name in double quotes") }
                _ = try text(field: field)
                guard consume(0x3A) else { throw fail(field, "expected ':'") }
                try skipValue(field: field, depth: depth + 1)
            } while consume(0x2C)
            guard consume(0x7D) else { throw fail(field, "expected ',' or '}'") }
        case 0x5B:
            index += 1
            if consume(0x5D) { return }
            repeat { try skipValue(field: field, depth: depth + 1) } while consume(0x2C)
            guard consume(0x5D) else { throw fail(field, "expected ',' or ']'") }
        case 0x74: try literal("true", field)
        case 0x66: try literal("false", field)
        case 0x6E: try literal("null", field)
        default: try number(field)
        }
    }

    mutating func literal(_ word: String, _ field: String) throws(EventDecodingError) {
        let count = word.utf8.count
        guard index + count <= bytes.count, bytes[index..<(index + count)].elementsEqual(word.utf8) else {
            throw fail(field, "invalid value")
        }
        index += count
    }

    /// Validates a JSON number per RFC 8259 grammar.
    mutating func number(_ field: String) throws(EventDecodingError) {
        func isDigit(_ b: UInt8?) -> Bool { b.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        if peek == 0x2D { index += 1 }
        guard isDigit(peek) else { throw fail(field, "invalid value") }
        if peek == 0x30 {
            index += 1
        } else {
            while isDigit(peek) { index += 1 }
        }
        if peek == 0x2E {
            index += 1
            guard isDigit(peek) else { throw fail(field, "invalid number") }
            while isDigit(peek) { index += 1 }
        }
        if peek == 0x65 || peek == 0x45 {
            index += 1
            if peek == 0x2B || peek == 0x2D { index += 1 }
            guard isDigit(peek) else { throw fail(field, "invalid number") }
            while isDigit(peek) { index += 1 }
        }
    }
}
