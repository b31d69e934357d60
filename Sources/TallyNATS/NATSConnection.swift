import Foundation
public import NIOCore
import NIOPosix
import Synchronization

/// A NATS server to connect to: `nats://host:port` (the scheme and port may be left out: 4222).
public struct NATSServerAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int = 4222) {
        self.host = host
        self.port = port
    }

    /// Parses `nats://host:port`, `host:port` or `host`; nil for anything else.
    public init?(_ url: String) {
        var rest = Substring(url)
        if rest.hasPrefix("nats://") { rest = rest.dropFirst("nats://".count) }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, !parts[0].contains("/") else { return nil }
        host = String(parts[0])
        if parts.count == 2 {
            guard let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
            self.port = port
        } else {
            port = 4222
        }
    }

    public var description: String { "nats://\(host):\(port)" }
}

/// What the server said about itself in its `INFO`.
public struct NATSServerInfo: Sendable, Decodable {
    public var serverID: String
    public var version: String
    public var jetStream: Bool
    public var maxPayload: Int
    public var headers: Bool

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id"
        case version
        case jetStream = "jetstream"
        case maxPayload = "max_payload"
        case headers
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        serverID = try container.decode(String.self, forKey: .serverID)
        version = try container.decode(String.self, forKey: .version)
        jetStream = try container.decodeIfPresent(Bool.self, forKey: .jetStream) ?? false
        maxPayload = try container.decodeIfPresent(Int.self, forKey: .maxPayload) ?? 1_048_576
        headers = try container.decodeIfPresent(Bool.self, forKey: .headers) ?? false
    }
}

/// A request for ``NATSConnection/requestAll(_:timeout:)``: a message to publish whose answer is awaited.
public struct NATSRequest: Sendable {
    public var subject: String
    public var headers: NATSHeaders?
    public var payload: [UInt8]

    public init(subject: String, headers: NATSHeaders? = nil, payload: [UInt8]) {
        self.subject = subject
        self.headers = headers
        self.payload = payload
    }
}

/// A subscription's messages, in the order the server delivered them, until it is unsubscribed or the connection
/// closes.
public struct NATSSubscription: Sendable {
    public let sid: UInt64
    public let subject: String
    public let messages: AsyncStream<NATSMessage>
}

/// One connection to a NATS server, shared by every subscription and request of its owner (SwiftNIO).
///
/// Requests are answered through one wildcard inbox subscription (`_INBOX.<random>.*`), each request on a token of
/// its own, so that many can be in flight at once: ``requestAll(_:timeout:)`` writes a whole batch and waits for the
/// answers together — a JetStream publish of 10,000 events costs one flush and the server's acknowledgements, not
/// 10,000 round trips.
///
/// The connection does not reconnect: when it closes, every pending request fails with
/// ``NATSError/connectionClosed(_:)`` and the subscriptions' streams end; the owner connects again (to any server
/// of its list) and resumes from what it had acknowledged.
public final class NATSConnection: Sendable {
    private let channel: any Channel
    private let router: Router
    private let inbox: String
    /// The server's `INFO` at connect.
    public let serverInfo: NATSServerInfo
    /// The server this connection is to.
    public let server: NATSServerAddress

    private init(
        channel: any Channel, router: Router, inbox: String, serverInfo: NATSServerInfo, server: NATSServerAddress
    ) {
        self.channel = channel
        self.router = router
        self.inbox = inbox
        self.serverInfo = serverInfo
        self.server = server
    }

    deinit { channel.close(promise: nil) }

    /// Connects to the first server of `servers` that accepts, in order, and completes the handshake (`INFO`,
    /// `CONNECT`, `PING`/`PONG`).
    public static func connect(
        to servers: [NATSServerAddress], name: String, timeout: Duration = .seconds(5),
        eventLoopGroup: (any EventLoopGroup)? = nil
    ) async throws(NATSError) -> NATSConnection {
        let eventLoopGroup = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        var failures: [String] = []
        for server in servers {
            do {
                return try await connect(to: server, name: name, timeout: timeout, eventLoopGroup: eventLoopGroup)
            } catch {
                failures.append("\(server): \(error)")
            }
        }
        throw .connectionFailed(failures.isEmpty ? "no server given" : failures.joined(separator: "; "))
    }

    private static func connect(
        to server: NATSServerAddress, name: String, timeout: Duration, eventLoopGroup: any EventLoopGroup
    ) async throws(NATSError) -> NATSConnection {
        let loop = eventLoopGroup.next()
        let router = Router(loop: loop)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeAmount(timeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ServerOperationDecoder()))
                        try channel.pipeline.syncOperations.addHandler(OperationHandler(router: router))
                    }
                }
                .connect(host: server.host, port: server.port).get()
        } catch {
            router.close(.connectionFailed("\(server): \(error)"))
            throw .connectionFailed("\(server): \(error)")
        }
        let timer = loop.scheduleTask(in: timeAmount(timeout)) {
            channel.close(promise: nil)  // fails the handshake's waits
        }
        defer { timer.cancel() }
        do {
            let infoJSON = try await router.info.futureResult.get()
            let info = try JSONDecoder().decode(NATSServerInfo.self, from: Data(infoJSON))
            let inbox = "_INBOX.\(randomToken())"
            var connect = [
                "\"verbose\":false", "\"pedantic\":false", "\"lang\":\"swift\"", "\"version\":\"1\"",
                "\"protocol\":1", "\"headers\":true", "\"no_responders\":true",
            ]
            connect.append("\"name\":\(jsonString(name))")
            let pong = try router.expectPong()
            var buffer = channel.allocator.buffer(capacity: 512)
            ClientOperation.connect("{" + connect.joined(separator: ",") + "}", into: &buffer)
            ClientOperation.subscribe(inbox + ".*", sid: Router.inboxSID, into: &buffer)
            ClientOperation.ping(into: &buffer)
            try await channel.writeAndFlush(buffer).get()
            try await pong.futureResult.get()
            return NATSConnection(channel: channel, router: router, inbox: inbox, serverInfo: info, server: server)
        } catch {
            channel.close(promise: nil)
            throw .connectionFailed("\(server): \(router.closedReason ?? .connectionFailed("\(error)"))")
        }
    }

    /// Publishes a message (no answer awaited). It is written at once; ``flush(timeout:)`` waits until the server
    /// has read it.
    public func publish(
        _ subject: String, payload: some Collection<UInt8>, headers: NATSHeaders? = nil, replyTo: String? = nil
    ) throws(NATSError) {
        guard isValidSubject(subject), replyTo.map(isValidSubject) ?? true else {
            throw .protocolViolation("an invalid subject: \(subject)")
        }
        if let reason = router.closedReason { throw reason }
        var buffer = channel.allocator.buffer(capacity: subject.utf8.count + payload.count + 64)
        ClientOperation.publish(subject, replyTo: replyTo, headers: headers, payload: payload, into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// Subscribes to `subject` (wildcards allowed).
    public func subscribe(_ subject: String) throws(NATSError) -> NATSSubscription {
        guard isValidSubject(subject) else { throw .protocolViolation("an invalid subject: \(subject)") }
        let (stream, continuation) = AsyncStream.makeStream(of: NATSMessage.self)
        let sid = try router.addSubscription(continuation)
        var buffer = channel.allocator.buffer(capacity: subject.utf8.count + 32)
        ClientOperation.subscribe(subject, sid: sid, into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
        return NATSSubscription(sid: sid, subject: subject, messages: stream)
    }

    /// Ends a subscription: the server stops delivering, and its stream finishes.
    public func unsubscribe(_ subscription: NATSSubscription) {
        router.removeSubscription(subscription.sid)
        var buffer = channel.allocator.buffer(capacity: 32)
        ClientOperation.unsubscribe(sid: subscription.sid, into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// A unique subject to receive answers on (for requests with several answers, such as a JetStream fetch).
    public func newInbox() -> String { "_INBOX.\(randomToken())" }

    /// Publishes a request and returns its answer; throws ``NATSError/noResponders(subject:)`` when nobody listens.
    public func request(
        _ subject: String, payload: [UInt8], headers: NATSHeaders? = nil, timeout: Duration = .seconds(5)
    ) async throws(NATSError) -> NATSMessage {
        let answers = try await requestAll(
            [NATSRequest(subject: subject, headers: headers, payload: payload)], timeout: timeout)
        if answers[0].status == 503 { throw .noResponders(subject: subject) }
        return answers[0]
    }

    /// Publishes every request with one flush and returns their answers in the same order (a `503` status
    /// message for a subject nobody listens on). Throws ``NATSError/timeout(subject:)`` when any answer is
    /// missing after `timeout`.
    public func requestAll(
        _ requests: [NATSRequest], timeout: Duration = .seconds(5)
    ) async throws(NATSError)
        -> [NATSMessage]
    {
        guard !requests.isEmpty else { return [] }
        for request in requests where !isValidSubject(request.subject) {
            throw .protocolViolation("an invalid subject: \(request.subject)")
        }
        let (batch, firstToken, promise) = try router.addBatch(count: requests.count)
        var buffer = channel.allocator.buffer(capacity: 64 * 1024)
        for (offset, request) in requests.enumerated() {
            ClientOperation.publish(
                request.subject, replyTo: "\(inbox).\(firstToken + UInt64(offset))", headers: request.headers,
                payload: request.payload, into: &buffer)
            if buffer.readableBytes >= 64 * 1024 {
                channel.write(buffer, promise: nil)
                buffer = channel.allocator.buffer(capacity: 64 * 1024)
            }
        }
        channel.writeAndFlush(buffer, promise: nil)
        let router = self.router
        let subject = requests[0].subject
        let timer = channel.eventLoop.scheduleTask(in: timeAmount(timeout)) {
            router.failBatch(batch, .timeout(subject: subject))
        }
        defer { timer.cancel() }
        do {
            return try await promise.futureResult.get()
        } catch let error as NATSError {
            throw error
        } catch {
            throw .connectionClosed("\(error)")
        }
    }

    /// Waits until the server has read everything written before (a `PING` and its `PONG`).
    public func flush(timeout: Duration = .seconds(5)) async throws(NATSError) {
        let pong = try router.expectPong()
        var buffer = channel.allocator.buffer(capacity: 8)
        ClientOperation.ping(into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
        let timer = channel.eventLoop.scheduleTask(in: timeAmount(timeout)) {
            pong.fail(NATSError.timeout(subject: "PING"))
        }
        defer { timer.cancel() }
        do {
            try await pong.futureResult.get()
        } catch let error as NATSError {
            throw error
        } catch {
            throw .connectionClosed("\(error)")
        }
    }

    /// Closes the connection: pending requests fail, subscriptions end.
    public func close() async {
        try? await channel.close()
    }

    /// Whether the connection has closed.
    public var isClosed: Bool { router.closedReason != nil }
}

/// Routes what the server sends to the connection's waiters: the `INFO` at connect, `PONG`s in order, answers by
/// inbox token, messages by subscription id. Shared by the channel's handler (on the event loop) and the
/// connection's callers (any thread).
private final class Router: Sendable {
    static let inboxSID: UInt64 = 1

    /// Where a token's answer goes: the batch, and its place in it.
    private struct Pending {
        var batch: UInt64
        var index: Int
    }

    private struct Batch {
        var answers: [NATSMessage?]
        var remaining: Int
        var firstToken: UInt64
        var promise: EventLoopPromise<[NATSMessage]>
    }

    private struct State {
        var subscriptions: [UInt64: AsyncStream<NATSMessage>.Continuation] = [:]
        var nextSID: UInt64 = Router.inboxSID + 1
        var pending: [UInt64: Pending] = [:]
        var batches: [UInt64: Batch] = [:]
        var nextToken: UInt64 = 1
        var nextBatch: UInt64 = 1
        var pongs: [EventLoopPromise<Void>] = []
        var closed: NATSError?
        var infoSeen = false
        var lastError: String?
    }

    let info: EventLoopPromise<[UInt8]>
    private let loop: any EventLoop
    private let state = Mutex(State())

    init(loop: any EventLoop) {
        self.loop = loop
        info = loop.makePromise()
    }

    var closedReason: NATSError? { state.withLock { $0.closed } }

    func receivedInfo(_ json: [UInt8]) {
        let first = state.withLock { state in
            defer { state.infoSeen = true }
            return !state.infoSeen
        }
        if first { info.succeed(json) }
    }

    func expectPong() throws(NATSError) -> EventLoopPromise<Void> {
        let promise = loop.makePromise(of: Void.self)
        let closed = state.withLock { state -> NATSError? in
            if let closed = state.closed { return closed }
            state.pongs.append(promise)
            return nil
        }
        if let closed {
            promise.fail(closed)
            throw closed
        }
        return promise
    }

    func receivedPong() {
        let promise = state.withLock { $0.pongs.isEmpty ? nil : $0.pongs.removeFirst() }
        promise?.succeed()
    }

    func addSubscription(_ continuation: AsyncStream<NATSMessage>.Continuation) throws(NATSError) -> UInt64 {
        let result = state.withLock { state -> Result<UInt64, NATSError> in
            if let closed = state.closed { return .failure(closed) }
            let sid = state.nextSID
            state.nextSID += 1
            state.subscriptions[sid] = continuation
            return .success(sid)
        }
        return try result.get()
    }

    func removeSubscription(_ sid: UInt64) {
        state.withLock { $0.subscriptions.removeValue(forKey: sid) }?.finish()
    }

    /// Registers `count` requests answered on consecutive tokens from the returned first one.
    func addBatch(count: Int) throws(NATSError) -> (UInt64, UInt64, EventLoopPromise<[NATSMessage]>) {
        let promise = loop.makePromise(of: [NATSMessage].self)
        let result = state.withLock { state -> Result<(UInt64, UInt64), NATSError> in
            if let closed = state.closed { return .failure(closed) }
            let id = state.nextBatch
            state.nextBatch += 1
            let first = state.nextToken
            state.nextToken += UInt64(count)
            for index in 0..<count { state.pending[first + UInt64(index)] = Pending(batch: id, index: index) }
            state.batches[id] = Batch(
                answers: Array(repeating: nil, count: count), remaining: count, firstToken: first, promise: promise)
            return .success((id, first))
        }
        switch result {
        case .success(let (id, first)): return (id, first, promise)
        case .failure(let error):
            promise.fail(error)
            throw error
        }
    }

    func failBatch(_ id: UInt64, _ error: NATSError) {
        let batch = state.withLock { state -> Batch? in
            guard let batch = state.batches.removeValue(forKey: id) else { return nil }
            for index in 0..<batch.answers.count { state.pending[batch.firstToken + UInt64(index)] = nil }
            return batch
        }
        batch?.promise.fail(error)
    }

    func received(_ message: NATSMessage, sid: UInt64) {
        if sid == Self.inboxSID {
            guard let dot = message.subject.lastIndex(of: "."),
                let token = UInt64(message.subject[message.subject.index(after: dot)...])
            else { return }
            let done = state.withLock { state -> (EventLoopPromise<[NATSMessage]>, [NATSMessage])? in
                guard let (id, index) = state.pending.removeValue(forKey: token).map({ ($0.batch, $0.index) }),
                    state.batches[id] != nil
                else { return nil }  // an answer after its timeout
                // In place: a copy of the batch would copy its answers, once per answer.
                state.batches[id]?.answers[index] = message
                state.batches[id]?.remaining -= 1
                guard state.batches[id]?.remaining == 0, let batch = state.batches.removeValue(forKey: id) else {
                    return nil
                }
                return (batch.promise, batch.answers.compactMap { $0 })  // every answer is in: none is nil
            }
            if let (promise, answers) = done { promise.succeed(answers) }
            return
        }
        let continuation = state.withLock { $0.subscriptions[sid] }
        continuation?.yield(message)
    }

    /// The connection closed: every waiter fails with `reason`, every subscription ends.
    func close(_ reason: NATSError) {
        let (pongs, batches, subscriptions, infoSeen) = state.withLock {
            state -> ([EventLoopPromise<Void>], [Batch], [AsyncStream<NATSMessage>.Continuation], Bool) in
            if state.closed == nil { state.closed = reason }
            defer {
                state.pongs = []
                state.batches = [:]
                state.pending = [:]
                state.subscriptions = [:]
                state.infoSeen = true
            }
            return (state.pongs, Array(state.batches.values), Array(state.subscriptions.values), state.infoSeen)
        }
        if !infoSeen { info.fail(reason) }
        for pong in pongs { pong.fail(reason) }
        for batch in batches { batch.promise.fail(reason) }
        for subscription in subscriptions { subscription.finish() }
    }

    /// The server's `-ERR`: kept as the reason given when the server closes the connection after it (it does for
    /// every error but a permissions violation).
    func serverError(_ text: String) {
        state.withLock { $0.lastError = text }
    }

    var lastError: String? { state.withLock { $0.lastError } }
}

/// The channel handler: answers the server's `PING`s and hands everything else to the ``Router``.
private final class OperationHandler: ChannelInboundHandler {
    typealias InboundIn = ServerOperation
    typealias OutboundOut = ByteBuffer

    private let router: Router

    init(router: Router) { self.router = router }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .info(let json): router.receivedInfo(json)
        case .ping:
            var buffer = context.channel.allocator.buffer(capacity: 8)
            ClientOperation.pong(into: &buffer)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case .pong: router.receivedPong()
        case .ok: break
        case .error(let text): router.serverError(text)
        case .message(let message, let sid): router.received(message, sid: sid)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let detail = router.lastError.map { "the server said: \($0)" } ?? "closed by the peer"
        router.close(.connectionClosed(detail))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        router.close((error as? NATSError) ?? .connectionClosed("\(error)"))
        context.close(promise: nil)
    }
}

func timeAmount(_ duration: Duration) -> TimeAmount { .nanoseconds(duration.jetStreamNanoseconds) }

/// 22 random characters from the alphabet NATS inboxes use.
func randomToken() -> String {
    let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    var generator = SystemRandomNumberGenerator()
    return String((0..<22).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
}

func jsonString(_ text: String) -> String {
    let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
    return String(decoding: data, as: UTF8.self)
}
