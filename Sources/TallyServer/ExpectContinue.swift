import CoreMetrics
import HTTPTypes
import NIOCore
import NIOHTTPTypes
import TallyCore
import TallyEngine

/// The largest request body each route takes, as far as it is known from the request head: what lets a request
/// sent with `Expect: 100-continue` be refused before its body is sent.
struct RequestBodyLimits: Sendable {
    /// `limits.max_body`, for `POST /v1/events` and the Segment routes (`/v1/batch`, `/v1/track`, `/v1/b`, …).
    let events: Int
    /// Whether the socket serves the administrative routes (their body limits are fixed, Docs/security.md).
    let administrative: Bool

    /// The paths of the Segment-compatible routes (I6).
    static let segmentPaths = Set(SegmentRoute.paths.map(\.path))

    /// The body limit of the route `method path` answers and the route's name in the metrics, nil when the head
    /// alone does not tell.
    func limit(method: HTTPRequest.Method, path: String) -> (bytes: Int, route: String)? {
        let path = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        switch method {
        case .post where path == "/v1/events": return (events, "/v1/events")
        case .post where Self.segmentPaths.contains(String(path)): return (events, String(path))
        case .put where administrative && path == "/v1/rules": return (TallyEngine.maximumRulesBytes, "/v1/rules")
        case .post where administrative && path.hasPrefix("/v1/contacts/"):
            return (64 << 10, path.hasSuffix("/points") ? "/v1/contacts/:id/points" : "/v1/contacts/:id")
        default: return nil
        }
    }
}

/// Answers `Expect: 100-continue` (RFC 9110 §10.1.1), which curl sends with any body over 1 MB before waiting a
/// second for the answer: `100 Continue` at once, or, when the declared `Content-Length` is over the route's
/// limit, the final 413 without reading the body (the connection then closes, as the body never comes).
///
/// With pipelined requests the `100 Continue` waits until the responses owed to the earlier ones are written, so
/// that it never lands in the middle of another response. Sits after the HTTP/1 codec in each child channel.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limits: RequestBodyLimits
    private let socket: String
    /// Requests passed on whose response has not been written to its end.
    private var owed = 0
    /// A `100 Continue` to write once this many more responses are written to their end.
    private var continueAfter: Int?
    /// Set once a request is refused before its body: the connection is closing and reads nothing more.
    private var refused = false

    init(limits: RequestBodyLimits, socket: String) {
        self.limits = limits
        self.socket = socket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        guard case .head(let request) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let expectsContinue =
            request.headerFields[values: .expect].contains { $0.trimmingSpaces().lowercased() == "100-continue" }
        if expectsContinue, owed == 0, let limit = limits.limit(method: request.method, path: request.path ?? ""),
            let declared = request.headerFields[.contentLength].flatMap({ Int($0) }), declared > limit.bytes
        {
            refused = true
            TallyMetrics.rejected("too_large").increment()
            Counter(
                label: "tally_http_requests_total",
                dimensions: [("socket", socket), ("route", limit.route), ("status", "413")]
            ).increment()
            EarlyResponse.write(
                status: .contentTooLarge, message: "request body larger than \(limit.bytes) bytes", context: context,
                wrap: wrapOutboundOut)
            return
        }
        if expectsContinue {
            if owed == 0 {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
            } else {
                continueAfter = owed
            }
        }
        owed += 1
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        owed = max(0, owed - 1)
        context.write(data, promise: promise)
        if let remaining = continueAfter {
            if remaining <= 1 {
                continueAfter = nil
                context.write(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
            } else {
                continueAfter = remaining - 1
            }
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> Substring {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}
