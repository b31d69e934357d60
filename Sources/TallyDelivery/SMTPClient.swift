public import NIOCore
import NIOPosix

/// Hands one email at a time to an SMTP relay, over a fresh connection per message (SwiftNIO).
///
/// `send` validates the message before it connects, then speaks RFC 5321: the `220` greeting, `EHLO` (or
/// `HELO` when the relay refuses `EHLO`), `MAIL FROM`, one `RCPT TO` per recipient, `DATA`, the message, and
/// `QUIT`. It returns once the relay has accepted the message (`250` after the final `.`), and throws an
/// ``SMTPError`` that says whether retrying can help. The whole exchange is bounded by
/// ``SMTPRelay/timeout``.
///
/// There is no STARTTLS and no AUTH: the relay is a trusted one on loopback (or a private network) that
/// does the onward delivery. Retries are the caller's (the outbox's) business; a message is sent at most
/// once per call.
///
/// A recipient the relay refuses fails the whole message (nothing is sent), so that a retry sends it to all
/// recipients, never to some twice.
public struct SMTPClient: Sendable {
    private let eventLoopGroup: any EventLoopGroup

    /// A client on NIO's shared event loop group.
    public init() {
        self.eventLoopGroup = MultiThreadedEventLoopGroup.singleton
    }

    /// A client whose connections run on `eventLoopGroup`.
    public init(eventLoopGroup: any EventLoopGroup) {
        self.eventLoopGroup = eventLoopGroup
    }

    /// Sends `message` through `relay`: returns when the relay has accepted it, throws when it did not.
    public func send(_ message: EmailMessage, via relay: SMTPRelay) async throws(SMTPError) {
        let sender = message.from ?? relay.from
        try Self.validate(message, sender: sender, relay: relay)
        let deadline = ContinuousClock.now.advanced(by: relay.timeout)

        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(Self.timeAmount(relay.timeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: relay.host, port: relay.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch let error as ChannelError {
            if case .connectTimeout = error {
                throw SMTPError(stage: .connect, kind: .timeout, detail: "no connection within \(relay.timeout)")
            }
            throw SMTPError(stage: .connect, kind: .connectionFailed, detail: "\(error)")
        } catch {
            throw SMTPError(stage: .connect, kind: .connectionFailed, detail: "\(error)")
        }

        let outcome = await withTaskGroup(of: Bool.self, returning: Result<Void, SMTPError>.self) { group in
            // The deadline closes the connection, which ends whatever read or write the exchange waits for.
            let underlying = channel.channel
            group.addTask {
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return false }
                underlying.close(promise: nil)
                return true
            }
            var result: Result<Void, SMTPError>
            do {
                result = try await channel.executeThenClose { inbound, outbound in
                    var session = SMTPSession(inbound: inbound.makeAsyncIterator(), outbound: outbound)
                    let delivered = await session.deliver(message, sender: sender, relay: relay)
                    if case .success = delivered { await session.quit() }
                    return delivered
                }
            } catch {
                // Unreachable: the body does not throw, and NIO swallows errors from closing.
                result = .failure(SMTPError(stage: .connect, kind: .connectionClosed, detail: "\(error)"))
            }
            group.cancelAll()
            let timedOut = await group.next() ?? false
            if timedOut, case .failure(let error) = result, error.kind == .connectionClosed {
                result = .failure(
                    SMTPError(stage: error.stage, kind: .timeout, detail: "no answer within \(relay.timeout)"))
            }
            return result
        }
        try outcome.get()
    }

    /// Throws ``SMTPError/Kind/invalidInput`` for what the relay must not be sent.
    static func validate(_ message: EmailMessage, sender: String, relay: SMTPRelay) throws(SMTPError) {
        func invalid(_ stage: SMTPError.Stage, _ problem: String?) throws(SMTPError) {
            if let problem { throw SMTPError(stage: stage, kind: .invalidInput, detail: problem) }
        }
        try invalid(.connect, MessageEncoding.problem(withRelay: relay))
        try invalid(.ehlo, MessageEncoding.problem(withHeloName: relay.heloName))
        try invalid(.mailFrom, MessageEncoding.problem(withAddress: sender))
        if message.to.isEmpty { try invalid(.rcptTo, "the message has no recipient") }
        for recipient in message.to { try invalid(.rcptTo, MessageEncoding.problem(withAddress: recipient)) }
        try invalid(.message, MessageEncoding.problem(withHeaderValue: message.subject, name: "Subject"))
        for (name, value) in message.headers {
            try invalid(.message, MessageEncoding.problem(withHeaderName: name))
            try invalid(.message, MessageEncoding.problem(withHeaderValue: value, name: name))
        }
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let limit = Int64.max / 1_000_000_000 - 1
        return .nanoseconds(max(0, min(seconds, limit)) * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The conversation on one connection: reads replies and writes commands. Lives in one task.
struct SMTPSession {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var parser = SMTPReplyParser()

    init(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Greeting to the reply after the final `.`; on a refused command it says `QUIT` before returning.
    mutating func deliver(
        _ message: EmailMessage, sender: String, relay: SMTPRelay
    ) async -> Result<Void, SMTPError> {
        do throws(SMTPError) {
            try await expect(readReply(.greeting), 2, .greeting)

            var extensions: Set<String> = []
            let ehlo = try await command("EHLO " + relay.heloName, .ehlo)
            if ehlo.codeClass == 5 {
                try await expect(command("HELO " + relay.heloName, .ehlo), 2, .ehlo)
            } else {
                try expect(ehlo, 2, .ehlo)
                for line in ehlo.lines.dropFirst() {
                    if let keyword = line.split(separator: " ").first { extensions.insert(keyword.uppercased()) }
                }
            }

            let addresses = [sender] + message.to
            var parameters = ""
            if extensions.contains("8BITMIME") { parameters += " BODY=8BITMIME" }
            if !addresses.allSatisfy(MessageEncoding.isASCII) {
                guard extensions.contains("SMTPUTF8") else {
                    let detail = "an address is not ASCII and the relay does not offer SMTPUTF8"
                    await sayQuit()
                    return .failure(SMTPError(stage: .mailFrom, kind: .invalidInput, detail: detail))
                }
                parameters += " SMTPUTF8"
            }
            try await expect(command("MAIL FROM:<\(sender)>" + parameters, .mailFrom), 2, .mailFrom)
            for recipient in message.to {
                try await expect(command("RCPT TO:<\(recipient)>", .rcptTo), 2, .rcptTo)
            }
            try await expect(command("DATA", .data), 3, .data)
            let payload = MessageEncoding.dataPayload(
                of: message, sender: sender, relayAccepts8Bit: extensions.contains("8BITMIME"),
                heloName: relay.heloName, now: MessageEncoding.currentSecondsSince1970())
            try await write(payload, .message)
            try await expect(readReply(.message), 2, .message)
            return .success(())
        } catch {
            // After a refusal the relay still listens for commands; say goodbye before closing.
            if error.kind == .rejected || error.kind == .unexpectedReply { await sayQuit() }
            return .failure(error)
        }
    }

    /// `QUIT` and its reply, after a delivered message; failures do not matter any more.
    mutating func quit() async {
        _ = try? await command("QUIT", .quit)
    }

    /// `QUIT` without waiting for the reply, before giving up on a refused message.
    func sayQuit() async {
        try? await write(Array("QUIT\r\n".utf8), .quit)
    }

    mutating func command(_ line: String, _ stage: SMTPError.Stage) async throws(SMTPError) -> SMTPReply {
        try await write(Array((line + "\r\n").utf8), stage)
        return try await readReply(stage)
    }

    func write(_ bytes: [UInt8], _ stage: SMTPError.Stage) async throws(SMTPError) {
        do {
            try await outbound.write(ByteBuffer(bytes: bytes))
        } catch {
            throw SMTPError(stage: stage, kind: .connectionClosed, detail: "cannot write: \(error)")
        }
    }

    mutating func readReply(_ stage: SMTPError.Stage) async throws(SMTPError) -> SMTPReply {
        while true {
            do {
                if let reply = try parser.next() { return reply }
            } catch {
                throw SMTPError(stage: stage, kind: .unexpectedReply, detail: error.reason)
            }
            let chunk: ByteBuffer?
            do {
                chunk = try await inbound.next()
            } catch {
                throw SMTPError(stage: stage, kind: .connectionClosed, detail: "cannot read: \(error)")
            }
            guard let chunk else {
                let detail = Task.isCancelled ? "cancelled" : "the relay closed the connection"
                throw SMTPError(stage: stage, kind: .connectionClosed, detail: detail)
            }
            parser.append(chunk.readableBytesView)
        }
    }

    /// Throws unless `reply` has the expected first digit: 4xx and 5xx as ``SMTPError/Kind/rejected``, any
    /// other code as ``SMTPError/Kind/unexpectedReply``.
    func expect(_ reply: SMTPReply, _ codeClass: Int, _ stage: SMTPError.Stage) throws(SMTPError) {
        guard reply.codeClass != codeClass else { return }
        let kind: SMTPError.Kind = reply.codeClass >= 4 ? .rejected : .unexpectedReply
        throw SMTPError(stage: stage, kind: kind, code: reply.code, serverText: reply.text)
    }
}
