import NIOCore

/// What a NATS server sends (the client protocol's server operations).
enum ServerOperation: Sendable, Equatable {
    /// `INFO {json}`: the server's description, first on a connection.
    case info([UInt8])
    /// `MSG` or `HMSG` for the subscription `sid`.
    case message(NATSMessage, sid: UInt64)
    case ping
    case pong
    case ok
    /// `-ERR 'text'`.
    case error(String)
}

/// Splits a byte stream from a NATS server into ``ServerOperation``s: a control line ending in CRLF, and for `MSG`
/// and `HMSG` the payload of the size the line gives, then CRLF.
struct ServerOperationDecoder: ByteToMessageDecoder {
    typealias InboundOut = ServerOperation

    /// A control line longer than this is an error (the server's default `max_control_line` is 4 KiB).
    static let maxControlLine = 64 * 1024

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let operation = try Self.next(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(operation))
        return .continue
    }

    /// The next whole operation at the buffer's reader index, consumed; nil when more bytes are needed.
    static func next(_ buffer: inout ByteBuffer) throws(NATSError) -> ServerOperation? {
        let view = buffer.readableBytesView
        guard let end = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maxControlLine { throw .protocolViolation("a control line over \(maxControlLine) bytes") }
            return nil
        }
        var lineEnd = end
        if lineEnd > view.startIndex, view[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
        let line = Array(view[view.startIndex..<lineEnd])
        let lineLength = end + 1 - view.startIndex
        let words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
        guard let verb = words.first.map({ String(decoding: $0, as: UTF8.self).uppercased() }) else {
            buffer.moveReaderIndex(forwardBy: lineLength)
            return try next(&buffer)  // an empty line between operations
        }
        switch verb {
        case "MSG", "HMSG":
            let headered = verb == "HMSG"
            // MSG subject sid [reply] size · HMSG subject sid [reply] header-size total-size
            let sizes = headered ? 2 : 1
            guard words.count == 3 + sizes || words.count == 4 + sizes,
                let total = Int(ascii: words[words.count - 1]),
                let sid = UInt64(ascii: words[2]),
                total >= 0
            else { throw .protocolViolation("a bad \(verb) line: \(String(decoding: line, as: UTF8.self))") }
            let headerSize = headered ? Int(ascii: words[words.count - 2]) : 0
            guard let headerSize, headerSize <= total else {
                throw .protocolViolation("a bad \(verb) header size: \(String(decoding: line, as: UTF8.self))")
            }
            guard view.count >= lineLength + total + 2 else { return nil }
            let payloadStart = view.startIndex + lineLength
            let body = Array(view[payloadStart..<payloadStart + total])
            buffer.moveReaderIndex(forwardBy: lineLength + total + 2)
            let headers = headered ? try NATSHeaders.parse(body[..<headerSize]) : nil
            let message = NATSMessage(
                subject: String(decoding: words[1], as: UTF8.self),
                replyTo: words.count == 4 + sizes ? String(decoding: words[3], as: UTF8.self) : nil,
                headers: headers, payload: Array(body[headerSize...]))
            return .message(message, sid: sid)
        case "PING":
            buffer.moveReaderIndex(forwardBy: lineLength)
            return .ping
        case "PONG":
            buffer.moveReaderIndex(forwardBy: lineLength)
            return .pong
        case "+OK":
            buffer.moveReaderIndex(forwardBy: lineLength)
            return .ok
        case "-ERR":
            buffer.moveReaderIndex(forwardBy: lineLength)
            let text = String(decoding: line.dropFirst(4), as: UTF8.self)
            return .error(text.trimmingCharacters(in: " '"))
        case "INFO":
            buffer.moveReaderIndex(forwardBy: lineLength)
            return .info(Array(line.dropFirst(4).drop(while: { $0 == UInt8(ascii: " ") })))
        default:
            throw .protocolViolation("an unknown operation: \(String(decoding: line.prefix(80), as: UTF8.self))")
        }
    }
}

/// Writes the client's operations: `CONNECT`, `PUB`/`HPUB`, `SUB`, `UNSUB`, `PING`, `PONG`.
enum ClientOperation {
    static func connect(_ json: String, into buffer: inout ByteBuffer) {
        buffer.writeString("CONNECT \(json)\r\n")
    }

    static func publish(
        _ subject: String, replyTo: String?, headers: NATSHeaders?, payload: some Collection<UInt8>,
        into buffer: inout ByteBuffer
    ) {
        let reply = replyTo.map { " " + $0 } ?? ""
        if let headers {
            let block = headers.encoded()
            buffer.writeString("HPUB \(subject)\(reply) \(block.count) \(block.count + payload.count)\r\n")
            buffer.writeBytes(block)
        } else {
            buffer.writeString("PUB \(subject)\(reply) \(payload.count)\r\n")
        }
        buffer.writeBytes(payload)
        buffer.writeString("\r\n")
    }

    static func subscribe(_ subject: String, sid: UInt64, into buffer: inout ByteBuffer) {
        buffer.writeString("SUB \(subject) \(sid)\r\n")
    }

    static func unsubscribe(sid: UInt64, into buffer: inout ByteBuffer) {
        buffer.writeString("UNSUB \(sid)\r\n")
    }

    static func ping(into buffer: inout ByteBuffer) { buffer.writeString("PING\r\n") }
    static func pong(into buffer: inout ByteBuffer) { buffer.writeString("PONG\r\n") }
}

/// A subject or inbox token is a non-empty word without spaces, tabs, CR or LF (the protocol splits on them).
func isValidSubject(_ subject: String) -> Bool {
    !subject.isEmpty && !subject.utf8.contains(where: { $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 })
}

extension Int {
    init?(ascii digits: ArraySlice<UInt8>) {
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        self = digits.reduce(0) { $0 * 10 + Int($1 - 48) }
    }
}

extension UInt64 {
    init?(ascii digits: ArraySlice<UInt8>) {
        guard let value = Int(ascii: digits) else { return nil }
        self = UInt64(value)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        return String(
            self.drop(while: { characters.contains($0) }).reversed().drop(while: { characters.contains($0) })
                .reversed())
    }
}
