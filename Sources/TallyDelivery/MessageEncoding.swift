#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Validation of addresses and headers, and the bytes of a message as sent after `DATA` (RFC 5321, 5322,
/// 2045, 2047). Pure functions, no I/O.
enum MessageEncoding {
    /// The limit of a line without its CRLF (RFC 5321 §4.5.3.1.6, RFC 5322 §2.1.1).
    static let maximumLineLength = 998

    /// Header fields the client writes itself and a message cannot give (`Message-ID` and `Date` can).
    static let reservedHeaders: Set<String> = [
        "from", "to", "subject", "mime-version", "content-type", "content-transfer-encoding",
    ]

    // MARK: - Validation

    /// Why `address` cannot be used in `MAIL FROM`/`RCPT TO` and the headers, or `nil` when it can: it must
    /// have a local part, an `@` and a domain, and no control characters, spaces, `<` or `>`.
    static func problem(withAddress address: String) -> String? {
        if address.isEmpty { return "the address is empty" }
        if address.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
            return "the address \(quoted(address)) contains CR or LF"
        }
        if address.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "the address \(quoted(address)) contains a control character"
        }
        if address.contains("<") || address.contains(">") {
            return "the address \(quoted(address)) contains < or >"
        }
        if address.unicodeScalars.contains(where: { $0.properties.isWhitespace }) {
            return "the address \(quoted(address)) contains white space"
        }
        guard let at = address.lastIndex(of: "@") else { return "the address \(quoted(address)) has no @" }
        if at == address.startIndex || address.index(after: at) == address.endIndex {
            return "the address \(quoted(address)) needs a local part and a domain around the @"
        }
        if address.utf8.count > 254 { return "the address \(quoted(address)) is longer than 254 bytes" }
        return nil
    }

    /// Why `value` cannot be the value of header `name`, or `nil` when it can: no CR or LF (header injection)
    /// and no other control character except tab.
    static func problem(withHeaderValue value: String, name: String) -> String? {
        if value.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
            return "the \(name) header contains CR or LF (header injection)"
        }
        if value.unicodeScalars.contains(where: { ($0.value < 0x20 && $0.value != 9) || $0.value == 0x7F }) {
            return "the \(name) header contains a control character"
        }
        return nil
    }

    /// Why `name` cannot be a header field name, or `nil` when it can: printable ASCII except `:`
    /// (RFC 5322 §3.6.8), and not one the client writes itself.
    static func problem(withHeaderName name: String) -> String? {
        if name.isEmpty { return "a header name is empty" }
        if !name.utf8.allSatisfy({ (33...126).contains($0) && $0 != UInt8(ascii: ":") }) {
            return "the header name \(quoted(name)) must be printable ASCII without a colon"
        }
        if reservedHeaders.contains(name.lowercased()) {
            return "the \(name) header is written by the client and cannot be given"
        }
        return nil
    }

    /// Why the relay's host, port or timeout cannot be used, or `nil`.
    static func problem(withRelay relay: SMTPRelay) -> String? {
        if relay.host.isEmpty { return "the relay host is empty" }
        if relay.host.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
            return "the relay host \(quoted(relay.host)) contains white space or a control character"
        }
        if !(1...65535).contains(relay.port) { return "the relay port \(relay.port) is not in 1…65535" }
        if relay.timeout <= .zero { return "the timeout \(relay.timeout) is not positive" }
        return nil
    }

    /// Why `name` cannot follow `EHLO`/`HELO`, or `nil`.
    static func problem(withHeloName name: String) -> String? {
        if name.isEmpty { return "the HELO name is empty" }
        if !name.utf8.allSatisfy({ (33...126).contains($0) }) {
            return "the HELO name \(quoted(name)) must be printable ASCII without spaces"
        }
        return nil
    }

    static func quoted(_ text: String) -> String {
        let escaped = text.unicodeScalars.map { scalar -> String in
            switch scalar {
            case "\r": "\\r"
            case "\n": "\\n"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: "\\u{\(String(scalar.value, radix: 16))}"
            default: String(scalar)
            }
        }
        return "\"" + escaped.joined() + "\""
    }

    static func isASCII(_ text: String) -> Bool { text.utf8.allSatisfy { $0 < 0x80 } }

    // MARK: - Headers

    /// `Name: value` for an unstructured header, folded where needed: the value as it is when it is ASCII,
    /// has no `=?` that a reader would take for an encoded word, and fits on one line; otherwise as RFC 2047
    /// encoded words (`=?UTF-8?B?…?=`) of whole characters, one per folded line.
    static func unstructuredHeader(_ name: String, _ value: String) -> String {
        let plain = name + ": " + value
        if isASCII(value) && !value.contains("=?") && plain.utf8.count <= maximumLineLength {
            return plain
        }
        return name + ": " + encodedWords(value).joined(separator: "\r\n ")
    }

    /// `value` as RFC 2047 "B" encoded words of at most 39 bytes of UTF-8 each (64 characters per word),
    /// never splitting a character.
    static func encodedWords(_ value: String) -> [String] {
        let limit = 39
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in value.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > limit {
                words.append("=?UTF-8?B?" + base64(chunk) + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?" + base64(chunk) + "?=") }
        return words
    }

    /// `To: a@x, b@y` folded before an address that would take the line past 78 characters.
    static func addressListHeader(_ name: String, _ addresses: [String]) -> String {
        var text = name + ":"
        var lineLength = text.utf8.count
        for (index, address) in addresses.enumerated() {
            let piece = (index == addresses.count - 1) ? address : address + ","
            if index > 0 && lineLength + 1 + piece.utf8.count > 78 {
                text += "\r\n"
                lineLength = 0
            }
            text += " " + piece
            lineLength += 1 + piece.utf8.count
        }
        return text
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = UInt32(bytes[index])
            let b1 = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
            let b2 = index + 2 < bytes.count ? UInt32(bytes[index + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            output.append(alphabet[Int(triple >> 18 & 63)])
            output.append(alphabet[Int(triple >> 12 & 63)])
            output.append(index + 1 < bytes.count ? alphabet[Int(triple >> 6 & 63)] : UInt8(ascii: "="))
            output.append(index + 2 < bytes.count ? alphabet[Int(triple & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The RFC 5322 date-time of `secondsSince1970` in UTC: `Tue, 03 Mar 2026 09:05:07 +0000`.
    static func rfc5322Date(secondsSince1970 seconds: Int64) -> String {
        let (days, secondOfDay) = seconds.floorDivided(by: 86_400)
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = (days + 4).floorDivided(by: 7).remainder  // 1970-01-01 was a Thursday
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekdays[Int(weekday)]), \(two(day)) \(months[Int(month - 1)]) \(year) "
            + "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) +0000"
    }

    /// Seconds since 1970 now, from the system's real-time clock.
    static func currentSecondsSince1970() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }

    /// A new `<random@domain>` message id, with the sender's domain when it is a plain dot-atom or literal.
    static func messageID(from sender: String, fallbackDomain: String) -> String {
        var domain = fallbackDomain
        if let at = sender.lastIndex(of: "@") {
            let candidate = sender[sender.index(after: at)...]
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:".utf8)
            if !candidate.isEmpty && candidate.utf8.allSatisfy({ allowed.contains($0) }) { domain = String(candidate) }
        }
        var random = SystemRandomNumberGenerator()
        let left = String(random.next() as UInt64, radix: 16) + "." + String(random.next() as UInt64, radix: 16)
        return "<tally." + left + "@" + domain + ">"
    }

    // MARK: - Body

    /// How the body goes over the wire.
    enum TransferEncoding: String {
        case eightBit = "8bit"
        case quotedPrintable = "quoted-printable"
    }

    /// The lines of `body` without their ends; LF, CRLF and a lone CR all end a line. A final line end does not
    /// start another line.
    static func lines(of body: String) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var current: [UInt8] = []
        var afterCR = false
        for byte in body.utf8 {
            if afterCR {
                afterCR = false
                if byte == 10 { continue }
            }
            switch byte {
            case 13:
                lines.append(current)
                current = []
                afterCR = true
            case 10:
                lines.append(current)
                current = []
            default:
                current.append(byte)
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    /// `8bit` when every line fits the line limit, has no NUL and — unless the relay offers `8BITMIME` — is
    /// ASCII; otherwise `quoted-printable`.
    static func transferEncoding(for lines: [[UInt8]], relayAccepts8Bit: Bool) -> TransferEncoding {
        for line in lines {
            if line.count > maximumLineLength || line.contains(0) { return .quotedPrintable }
            if !relayAccepts8Bit && line.contains(where: { $0 >= 0x80 }) { return .quotedPrintable }
        }
        return .eightBit
    }

    /// One line of text as quoted-printable lines of at most 76 characters (RFC 2045 §6.7), soft breaks
    /// ending with `=`.
    static func quotedPrintable(_ line: [UInt8]) -> [[UInt8]] {
        let hex = Array("0123456789ABCDEF".utf8)
        var output: [[UInt8]] = []
        var current: [UInt8] = []
        for (index, byte) in line.enumerated() {
            let isLast = index == line.count - 1
            let literal =
                (33...126).contains(byte) && byte != UInt8(ascii: "=") || ((byte == 32 || byte == 9) && !isLast)
            let token = literal ? [byte] : [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            // Leave room for the soft break's "=" unless this token ends the line.
            if current.count + token.count > (isLast ? 76 : 75) {
                output.append(current + [UInt8(ascii: "=")])
                current = []
            }
            current += token
        }
        output.append(current)
        return output
    }

    // MARK: - The whole message

    /// A body part as sent: its content type, transfer encoding and encoded lines.
    struct Part {
        var contentType: String
        var encoding: TransferEncoding
        var lines: [[UInt8]]

        /// `text` as a part of `contentType` (UTF-8), in the encoding its lines need.
        init(_ text: String, contentType: String, relayAccepts8Bit: Bool) {
            let raw = MessageEncoding.lines(of: text)
            self.contentType = contentType
            encoding = MessageEncoding.transferEncoding(for: raw, relayAccepts8Bit: relayAccepts8Bit)
            switch encoding {
            case .eightBit: lines = raw
            case .quotedPrintable: lines = raw.flatMap { MessageEncoding.quotedPrintable($0) }
            }
        }

        /// Whether the encoded lines hold bytes outside ASCII (an `8bit` part with non-ASCII text).
        var isEightBit: Bool { lines.contains { $0.contains { $0 >= 0x80 } } }
    }

    /// A new multipart boundary: `=_tally_` and 128 random bits. `=_` never occurs in quoted-printable text,
    /// and ``messageLines(of:sender:relayAccepts8Bit:heloName:now:boundary:)`` draws again in the unlikely
    /// case that an `8bit` line starts with it.
    static func newBoundary() -> String {
        var random = SystemRandomNumberGenerator()
        return "=_tally_" + String(random.next() as UInt64, radix: 16) + String(random.next() as UInt64, radix: 16)
    }

    /// The header lines of the message (without line ends), in the order they are sent; `contentType` and
    /// `encoding` are the top-level `Content-Type` and `Content-Transfer-Encoding` values.
    static func headerLines(
        of message: EmailMessage, sender: String, contentType: String, encoding: String, heloName: String,
        now secondsSince1970: Int64
    ) -> [String] {
        let given = Set(message.headers.map { $0.0.lowercased() })
        var headers: [String] = []
        if !given.contains("date") { headers.append("Date: " + rfc5322Date(secondsSince1970: secondsSince1970)) }
        headers.append(addressListHeader("From", [sender]))
        headers.append(addressListHeader("To", message.to))
        headers.append(unstructuredHeader("Subject", message.subject))
        if !given.contains("message-id") {
            headers.append("Message-ID: " + messageID(from: sender, fallbackDomain: heloName))
        }
        headers.append("MIME-Version: 1.0")
        headers.append("Content-Type: " + contentType)
        headers.append("Content-Transfer-Encoding: " + encoding)
        for (name, value) in message.headers { headers.append(unstructuredHeader(name, value)) }
        return headers
    }

    /// The lines of the message without line ends and without dot-stuffing: headers, an empty line and the
    /// body. Without ``EmailMessage/html`` the body is the text (`text/plain`); with it the body is
    /// `multipart/alternative` (RFC 2046 §5.1): the text part, then the HTML part, each with its own
    /// `Content-Type` and `Content-Transfer-Encoding`, between `--boundary` lines and closed by `--boundary--`.
    /// `boundary` is for tests; by default a random one (``newBoundary()``).
    static func messageLines(
        of message: EmailMessage, sender: String, relayAccepts8Bit: Bool, heloName: String,
        now secondsSince1970: Int64, boundary givenBoundary: String? = nil
    ) -> [[UInt8]] {
        let text = Part(message.body, contentType: "text/plain; charset=utf-8", relayAccepts8Bit: relayAccepts8Bit)
        var lines: [[UInt8]] = []
        func header(_ header: String) {
            for line in header.utf8.split(separator: 10, omittingEmptySubsequences: false) {
                lines.append(Array(line.last == 13 ? line.dropLast() : line))
            }
        }
        guard let html = message.html else {
            for line in headerLines(
                of: message, sender: sender, contentType: text.contentType, encoding: text.encoding.rawValue,
                heloName: heloName, now: secondsSince1970)
            {
                header(line)
            }
            lines.append([])
            return lines + text.lines
        }
        let parts = [text, Part(html, contentType: "text/html; charset=utf-8", relayAccepts8Bit: relayAccepts8Bit)]
        var boundary = givenBoundary ?? newBoundary()
        while parts.contains(where: { part in part.lines.contains { $0.starts(with: Array(("--" + boundary).utf8)) } })
        {
            boundary = newBoundary()
        }
        // A multipart entity's own encoding is 7bit or 8bit (RFC 2045 §6.4): 8bit when a part carries 8-bit text.
        let outer = parts.contains(where: \.isEightBit) ? "8bit" : "7bit"
        for line in headerLines(
            of: message, sender: sender, contentType: "multipart/alternative; boundary=\"\(boundary)\"",
            encoding: outer, heloName: heloName, now: secondsSince1970)
        {
            header(line)
        }
        lines.append([])
        lines.append(Array("This is a multi-part message in MIME format.".utf8))
        for part in parts {
            lines.append(Array(("--" + boundary).utf8))
            lines.append(Array(("Content-Type: " + part.contentType).utf8))
            lines.append(Array(("Content-Transfer-Encoding: " + part.encoding.rawValue).utf8))
            lines.append([])
            lines += part.lines
        }
        lines.append(Array(("--" + boundary + "--").utf8))
        return lines
    }

    /// Everything sent after the relay's `354`: the ``messageLines(of:sender:relayAccepts8Bit:heloName:now:boundary:)``
    /// and the terminating `.` line, with CRLF line ends and every line that starts with `.` dot-stuffed
    /// (RFC 5321 §4.5.2).
    static func dataPayload(
        of message: EmailMessage, sender: String, relayAccepts8Bit: Bool, heloName: String,
        now secondsSince1970: Int64, boundary: String? = nil
    ) -> [UInt8] {
        var payload: [UInt8] = []
        for line in messageLines(
            of: message, sender: sender, relayAccepts8Bit: relayAccepts8Bit, heloName: heloName,
            now: secondsSince1970, boundary: boundary)
        {
            if line.first == UInt8(ascii: ".") { payload.append(UInt8(ascii: ".")) }
            payload += line
            payload += [13, 10]
        }
        payload += Array(".\r\n".utf8)
        return payload
    }
}

extension Int64 {
    /// Quotient rounded toward minus infinity and the non-negative remainder.
    fileprivate func floorDivided(by divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let remainder = ((self % divisor) + divisor) % divisor
        return ((self - remainder) / divisor, remainder)
    }
}
