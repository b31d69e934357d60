import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
public import Prometheus
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
    let socket: String

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        let started = DispatchTime.now().uptimeNanoseconds
        let status: Int
        do {
            let response = try await next(request, context)
            status = response.status.code
            record(context, status: status, started: started)
            return response
        } catch {
            status = (error as? any HTTPResponseError)?.status.code ?? 500
            record(context, status: status, started: started)
            throw error
        }
    }

    private func record(_ context: Context, status: Int, started: UInt64) {
        let route = context.endpointPath ?? "NotFound"  // the name Hummingbird's router gives a path no route matches
        let dimensions = [("socket", socket), ("route", route), ("status", String(status))]
        Counter(label: "tally_http_requests_total", dimensions: dimensions).increment()
        Timer(label: "tally_http_request_duration_seconds", dimensions: [("socket", socket), ("route", route)])
            .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
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
