/// One complete reply of the relay: a three-digit code and the text of its lines (RFC 5321 §4.2).
struct SMTPReply: Sendable, Equatable {
    var code: Int
    /// The text of each line, without the code and the separator.
    var lines: [String]

    var text: String { lines.joined(separator: "\n") }
    /// The first digit: 2 success, 3 intermediate, 4 transient failure, 5 permanent failure.
    var codeClass: Int { code / 100 }
}

/// Splits the bytes received from the relay into replies, joining multi-line replies (`250-…` lines followed
/// by a final `250 …` line).
struct SMTPReplyParser {
    /// A reply that cannot be parsed; the text says why.
    struct Malformed: Error, Equatable {
        var reason: String
    }

    /// RFC 5321 allows 512 octets for a reply line; some servers send longer ones.
    static let maximumLineLength = 4096
    static let maximumLines = 256

    private var buffer: [UInt8] = []
    private var start = 0
    private var pendingCode: Int?
    private var pendingLines: [String] = []

    mutating func append<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete reply, or `nil` when more bytes are needed.
    mutating func next() throws(Malformed) -> SMTPReply? {
        while let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var end = newline
            if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            let line = buffer[start..<end]
            start = newline + 1
            if let reply = try consume(line) { return reply }
        }
        if buffer.count - start > Self.maximumLineLength {
            throw Malformed(reason: "a reply line is longer than \(Self.maximumLineLength) bytes")
        }
        return nil
    }

    private mutating func consume(_ line: ArraySlice<UInt8>) throws(Malformed) -> SMTPReply? {
        guard line.count <= Self.maximumLineLength else {
            throw Malformed(reason: "a reply line is longer than \(Self.maximumLineLength) bytes")
        }
        let digits = Array(line.prefix(3))
        guard digits.count == 3, (UInt8(ascii: "2")...UInt8(ascii: "5")).contains(digits[0]),
            digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else {
            throw Malformed(reason: "not a reply line: \(Self.printable(line))")
        }
        let code = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        let rest = line.dropFirst(3)
        let separator = rest.first
        guard separator == nil || separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else {
            throw Malformed(reason: "not a reply line: \(Self.printable(line))")
        }
        if let pendingCode, pendingCode != code {
            throw Malformed(reason: "reply lines with different codes \(pendingCode) and \(code)")
        }
        pendingLines.append(String(decoding: rest.dropFirst(), as: UTF8.self))
        guard pendingLines.count <= Self.maximumLines else {
            throw Malformed(reason: "a reply has more than \(Self.maximumLines) lines")
        }
        if separator == UInt8(ascii: "-") {
            pendingCode = code
            return nil
        }
        let reply = SMTPReply(code: code, lines: pendingLines)
        pendingCode = nil
        pendingLines = []
        return reply
    }

    private static func printable(_ line: ArraySlice<UInt8>) -> String {
        let text = String(decoding: line.prefix(80), as: UTF8.self)
        return "\"" + String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
            + "\""
    }
}
