import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
public import Prometheus
import Synchronization
import TallyEngine

/// The Prometheus side of the metrics: the registry `tally serve` bootstraps swift-metrics with, and
/// `GET /metrics`.
public enum MetricsExport {
    /// The registry every metric of the process lands in.
    public static let registry = PrometheusCollectorRegistry()

    /// The swift-metrics factory to bootstrap with: Prometheus, with the batch-size buckets.
    public static func factory() -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["tally_commit_batch_events"] = TallyMetrics.batchBuckets
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(5),
        ]
        return factory
    }

    /// The text exposition of every metric, after sampling the engine's gauges.
    static func response(_ engine: TallyEngine) -> Response {
        TallyMetrics.sample(engine)
        return response()
    }

    /// The text exposition of every metric as it stands.
    static func response() -> Response {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: buffer))
    }
}

/// Counts requests by socket, route and status, and times them (`tally_http_requests_total`,
/// `tally_http_request_duration_seconds`).
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let handles: RequestMetricHandles

    init(socket: String) {
        handles = RequestMetricHandles(socket: socket)
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            let response = try await next(request, context)
            record(context, status: response.status.code, started: started)
            return response
        } catch {
            record(context, status: (error as? any HTTPResponseError)?.status.code ?? 500, started: started)
            throw error
        }
    }

    private func record(_ context: Context, status: Int, started: UInt64) {
        // "NotFound": the name Hummingbird's router gives a path no route matches.
        let (counter, timer) = handles.handles(route: context.endpointPath ?? "NotFound", status: status)
        counter.increment()
        timer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
    }
}

/// One socket's request counters and timers by route and status, made once each: asking the metrics factory
/// per request (a lock, the dimension strings, the registry's lookup) was a measurable part of a single-event
/// post (issue 16). Routes and statuses are few, so the table stays small.
final class RequestMetricHandles: Sendable {
    private struct Key: Hashable {
        let route: String
        let status: Int
    }

    private let socket: String
    private let table = Mutex<[Key: (counter: CoreMetrics.Counter, timer: CoreMetrics.Timer)]>([:])

    init(socket: String) {
        self.socket = socket
    }

    func handles(route: String, status: Int) -> (counter: CoreMetrics.Counter, timer: CoreMetrics.Timer) {
        table.withLock { table in
            let key = Key(route: route, status: status)
            if let handles = table[key] { return handles }
            let handles = (
                counter: CoreMetrics.Counter(
                    label: "tally_http_requests_total",
                    dimensions: [("socket", socket), ("route", route), ("status", String(status))]),
                timer: CoreMetrics.Timer(
                    label: "tally_http_request_duration_seconds", dimensions: [("socket", socket), ("route", route)])
            )
            table[key] = handles
            return handles
        }
    }
}

/// Guards the optional loopback TCP listener (`admin_http`), which any local user and any web page open in a
/// browser on the machine can reach: requests must be addressed to the loopback host (no DNS rebinding), and
/// changes must not come from another origin or as a form (no cross-site requests).
struct LoopbackGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowedHosts: Set<String>
    static var secFetchSite: HTTPField.Name? { HTTPField.Name("Sec-Fetch-Site") }

    init(port: Int) {
        allowedHosts = ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)"]
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        guard let host = request.head.authority, allowedHosts.contains(host.lowercased())
        else {
            throw APIError(.forbidden, "admin_http answers only requests addressed to 127.0.0.1, localhost or [::1]")
        }
        if request.method != .get, request.method != .head {
            if let origin = request.headers[.origin], !allowedHosts.contains(where: { "http://" + $0 == origin }) {
                throw APIError(.forbidden, "cross-origin changes are refused on admin_http")
            }
            let type = request.headers[.contentType]?.lowercased() ?? ""
            if type.hasPrefix("application/x-www-form-urlencoded") || type.hasPrefix("multipart/form-data")
                || Self.secFetchSite.map({ request.headers[$0] == "cross-site" }) == true
            {
                throw APIError(.forbidden, "form posts and cross-site requests are refused on admin_http")
            }
        }
        return try await next(request, context)
    }
}
