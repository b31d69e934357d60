import CoreMetrics
import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The open connections of one listening socket, bounded by `limits.max_connections` (Docs/decisions.md).
///
/// At the limit a new connection evicts the connection that has been idle longest (no request in flight); when
/// every connection has a request in flight the new one is refused with a 503. So a flood of idle connections
/// cannot lock a real client out, and requests being worked on are never cut off. Child channels live on several
/// event loops, hence the mutex.
final class ConnectionTable: Sendable {
    /// What `admit` decided for a new connection.
    enum Admission {
        case admitted
        /// Admitted in the place of this idle connection, which the caller closes.
        case evicting(any Channel)
        case refused
    }

    private struct Entry {
        let channel: any Channel
        /// Requests whose head has arrived and whose response has not been written to the end.
        var inFlight = 0
        /// When the connection last became idle, as a tick of `State.clock`: smaller is idle for longer.
        var idleSince: UInt64
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        /// Entries with a request in flight.
        var busy = 0
        /// A counter that orders events; no wall clock is needed to know which connection is idle longest.
        var clock: UInt64 = 0

        var counts: (open: Int, busy: Int) { (entries.count, busy) }

        mutating func remove(_ key: ObjectIdentifier) -> Entry? {
            guard let entry = entries.removeValue(forKey: key) else { return nil }
            if entry.inFlight > 0 { busy -= 1 }
            return entry
        }
    }

    let socket: String
    let limit: Int
    private let state = Mutex(State())
    private let evicted: Counter
    private let refused: Counter
    private let open: Gauge
    private let busy: Gauge

    init(socket: String, limit: Int) {
        self.socket = socket
        self.limit = limit
        evicted = Counter(label: "tally_connections_evicted_total", dimensions: [("socket", socket)])
        refused = Counter(label: "tally_connections_refused_total", dimensions: [("socket", socket)])
        open = Gauge(label: "tally_connections_open", dimensions: [("socket", socket)])
        busy = Gauge(label: "tally_connections_busy", dimensions: [("socket", socket)])
        open.record(0)
        busy.record(0)
    }

    /// Counts a new connection, making room by evicting the longest-idle one when the table is full.
    func admit(_ channel: any Channel) -> Admission {
        // The gauges are set under the lock, so that they end on the latest counts.
        let admission = state.withLock { state -> Admission in
            defer { record(state.counts) }
            state.clock += 1
            var admission = Admission.admitted
            if state.entries.count >= limit {
                // A linear scan: eviction happens only at the limit, and the limit is at most a few thousand.
                var victim: (key: ObjectIdentifier, since: UInt64)?
                for (key, entry) in state.entries where entry.inFlight == 0 {
                    if victim.map({ entry.idleSince < $0.since }) ?? true { victim = (key, entry.idleSince) }
                }
                guard let victim, let entry = state.remove(victim.key) else { return .refused }
                admission = .evicting(entry.channel)
            }
            state.entries[ObjectIdentifier(channel)] = Entry(channel: channel, idleSince: state.clock)
            return admission
        }
        switch admission {
        case .admitted: break
        case .evicting: evicted.increment()
        case .refused: refused.increment()
        }
        return admission
    }

    /// A request head arrived on the connection.
    func requestStarted(_ channel: any Channel) {
        state.withLock { state in
            let key = ObjectIdentifier(channel)
            guard var entry = state.entries[key] else { return }
            entry.inFlight += 1
            if entry.inFlight == 1 { state.busy += 1 }
            state.entries[key] = entry
            record(state.counts)
        }
    }

    /// A response was written to its end on the connection.
    func responseFinished(_ channel: any Channel) {
        state.withLock { state in
            let key = ObjectIdentifier(channel)
            guard var entry = state.entries[key], entry.inFlight > 0 else { return }
            state.clock += 1
            entry.inFlight -= 1
            if entry.inFlight == 0 {
                entry.idleSince = state.clock
                state.busy -= 1
            }
            state.entries[key] = entry
            record(state.counts)
        }
    }

    /// The connection closed (or was evicted, when this does nothing).
    func remove(_ channel: any Channel) {
        state.withLock { state in
            if state.remove(ObjectIdentifier(channel)) != nil { record(state.counts) }
        }
    }

    private func record(_ counts: (open: Int, busy: Int)) {
        open.record(counts.open)
        busy.record(counts.busy)
    }
}

/// Counts its connection in a `ConnectionTable` and tells the table when requests start and finish; closes the
/// connection with a 503 when the table refuses it. Sits after the HTTP/1 codec in each child channel.
final class ConnectionLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let table: ConnectionTable
    private var registered = false
    private var refused = false

    init(table: ConnectionTable) {
        self.table = table
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { register(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        register(context)
        context.fireChannelActive()
    }

    private func register(_ context: ChannelHandlerContext) {
        guard !registered else { return }
        registered = true
        switch table.admit(context.channel) {
        case .admitted:
            break
        case .evicting(let victim):
            victim.close(promise: nil)
        case .refused:
            refused = true
            let message = "too many connections to this socket, all busy (limits.max_connections \(table.limit))"
            EarlyResponse.write(
                status: .serviceUnavailable, message: message, extraHeaders: [.retryAfter: "1"], context: context,
                wrap: wrapOutboundOut)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        table.remove(context.channel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        table.remove(context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection is closing: nothing it sends is handled.
        guard !refused else { return }
        if case .head = unwrapInboundIn(data) { table.requestStarted(context.channel) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { table.responseFinished(context.channel) }
        context.write(data, promise: promise)
    }
}

/// A final response written by a channel handler before the request reaches the router (a refused connection,
/// a refused `Expect: 100-continue`), in the API's JSON error shape; the connection is closed after it.
enum EarlyResponse {
    static func write(
        status: HTTPResponse.Status, message: String, extraHeaders: HTTPFields = [:], context: ChannelHandlerContext,
        wrap: (HTTPResponsePart) -> NIOAny
    ) {
        var body = ByteBuffer()
        body.writeString(#"{"error":{"message":"#)
        body.writeString(jsonString(message))
        body.writeString(#","status":\#(status.code)}}"#)
        body.writeString("\n")
        var headers = extraHeaders
        headers[.contentType] = "application/json"
        headers[.contentLength] = String(body.readableBytes)
        headers[.connection] = "close"
        headers[.server] = "tally"
        context.write(wrap(.head(HTTPResponse(status: status, headerFields: headers))), promise: nil)
        context.write(wrap(.body(body)), promise: nil)
        context.writeAndFlush(wrap(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// `text` as a JSON string literal.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
