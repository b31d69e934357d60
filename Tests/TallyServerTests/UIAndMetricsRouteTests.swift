import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TallyAPI
import TallyEngine
import TallyServer
import Testing

/// The admin UI pages and `GET /metrics`.
@Suite("Router: UI and metrics")
struct UIAndMetricsRouteTests {
    /// `tally serve` bootstraps swift-metrics with the Prometheus factory; the tests do it once per process.
    static let metrics: Void = MetricsSystem.bootstrap(MetricsExport.factory())

    @Test("GET /ui lists the top contacts as a self-contained page with a Content-Security-Policy")
    func topContacts() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let empty = try await client.get("/ui")
                #expect(empty.status == .ok)
                // The pages' header and the empty search link to `/ui/`.
                #expect(try await client.get("/ui/").status == .ok)
                #expect(String(buffer: empty.body).contains("No contacts yet."))
                let receipt = try await client.append(
                    """
                    {"type":"asset.download","contact":"low","item":"g"}
                    {"type":"asset.download","contact":"<high>","item":"g"}
                    {"type":"asset.download","contact":"<high>","item":"g"}
                    """)
                try await test.engine.awaitProjection(through: receipt.lastSeq ?? 0)
                let page = try await client.get("/ui")
                #expect(page.status == .ok)
                #expect(page.headers[.contentType] == "text/html; charset=utf-8")
                #expect(page.headers[.contentSecurityPolicy]?.hasPrefix("default-src 'none'") == true)
                let html = String(buffer: page.body)
                #expect(!html.contains("<high>"), "ids are escaped")
                let high = try #require(html.range(of: "&lt;high&gt;"))
                let low = try #require(html.range(of: ">low<"))
                #expect(high.lowerBound < low.lowerBound, "highest score first")
            }
        }
    }

    @Test("GET /ui/search?contact=ID redirects (303) to the contact's page, percent-encoded; empty to /ui/")
    func search() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let found = try await client.get("/ui/search?contact=a%20b%2Fc")
                #expect(found.status == .seeOther)
                #expect(found.headers[.location] == "/ui/contacts/a%20b%2Fc")
                let empty = try await client.get("/ui/search?contact=")
                #expect(empty.status == .seeOther)
                #expect(empty.headers[.location] == "/ui/")
                #expect(try await client.get("/ui/search").headers[.location] == "/ui/")
            }
        }
    }

    @Test("GET /ui/contacts/{id}: 200 with the score, the chart and the changes; 404 for an unknown contact")
    func contactPage() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let receipt = try await client.append(
                    """
                    {"type":"asset.download","contact":"a b","item":"g"}
                    {"type":"form.submit","contact":"a b","item":"demo"}
                    """)
                try await test.engine.awaitProjection(through: receipt.lastSeq ?? 0)
                let page = try await client.get("/ui/contacts/a%20b")
                #expect(page.status == .ok)
                #expect(page.headers[.contentSecurityPolicy] != nil)
                let html = String(buffer: page.body)
                #expect(html.contains("<h1>a b</h1>"))
                #expect(html.contains("id=\"score-chart\""))
                #expect(html.components(separatedBy: "class=\"award\"").count - 1 == 2, "one marker per audit entry")
                try expectError(try await client.get("/ui/contacts/nobody"), .notFound, containing: "nobody")
                let long = String(repeating: "x", count: 129)
                try expectError(try await client.get("/ui/contacts/\(long)"), .badRequest)
            }
        }
    }

    @Test("GET /metrics: the Prometheus text format, with the requests counted by socket, route and status")
    func metrics() async throws {
        _ = Self.metrics
        try await TestEngine.with { test in
            try await test.admin { client in
                _ = try await client.get("/health")
                _ = try await client.get("/v1/contacts/nobody")
                let response = try await client.get("/metrics")
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
                let text = String(buffer: response.body)
                #expect(text.contains("# TYPE tally_http_requests_total counter"), "\(text.prefix(2000))")
                let lines = text.split(separator: "\n").filter { $0.hasPrefix("tally_http_requests_total{") }
                #expect(
                    lines.contains {
                        $0.contains(#"socket="admin""#) && $0.contains(#"route="/health""#)
                            && $0.contains(#"status="200""#)
                    }, "\(lines)")
                #expect(
                    lines.contains { $0.contains(#"route="/v1/contacts/{id}""#) && $0.contains(#"status="404""#) },
                    "\(lines)")
            }
        }
    }
}
