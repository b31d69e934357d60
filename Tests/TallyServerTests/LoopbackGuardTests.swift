import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOEmbedded
import TallyAPI
import TallyEngine
import TallyServer
import Testing

/// The `admin_http` loopback listener's guard (Docs/security.md): requests must be addressed to the loopback host
/// and port (no DNS rebinding), and changes must come neither from another origin nor as a form.
@Suite("Router: the admin_http loopback guard")
struct LoopbackGuardTests {
    static let port = 8765

    /// Sends one request to `router` with the `Host` (HTTP/1.1) / `:authority` the test chooses; the test client of
    /// HummingbirdTesting always says `localhost`.
    static func send(
        _ router: Router<BasicRequestContext>, _ method: HTTPRequest.Method, _ path: String, authority: String?,
        headers: HTTPFields = [:], body: String = ""
    ) async throws -> (status: HTTPResponse.Status, body: ByteBuffer) {
        let responder = router.buildResponder()
        let request = Request(
            head: HTTPRequest(method: method, scheme: "http", authority: authority, path: path, headerFields: headers),
            body: RequestBody(buffer: ByteBuffer(string: body)))
        let context = BasicRequestContext(
            source: .init(channel: EmbeddedChannel(), logger: Logger(label: "loopback-guard-tests")))
        let response = try await responder.respond(to: request, context: context)
        let collector = BodyCollector()
        try await response.body.write(collector)
        return (response.status, collector.box.buffer)
    }

    /// A response body writer that keeps what it is given.
    struct BodyCollector: ResponseBodyWriter {
        final class Box { var buffer = ByteBuffer() }
        let box = Box()
        mutating func write(_ buffer: ByteBuffer) async throws { box.buffer.writeImmutableBuffer(buffer) }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    static func error(_ body: ByteBuffer) throws -> ErrorDocument.Detail {
        try JSONDecoder().decode(ErrorDocument.self, from: Data(body.readableBytesView)).error
    }

    @Test("reads addressed to 127.0.0.1, localhost or [::1] with the listener's port are answered, in any case")
    func loopbackHostsAreAnswered() async throws {
        try await TestEngine.with { test in
            let router = test.routes.adminRouter(loopbackPort: Self.port)
            for host in [
                "127.0.0.1:\(Self.port)", "localhost:\(Self.port)", "[::1]:\(Self.port)", "LocalHost:\(Self.port)",
            ] {
                let (status, body) = try await Self.send(router, .get, "/health", authority: host)
                #expect(status == .ok, "\(host)")
                #expect(try JSONDecoder().decode(HealthStatus.self, from: Data(body.readableBytesView)).status == "ok")
            }
            // A cross-site read is allowed: the same-origin policy keeps its answer from the page.
            let (status, _) = try await Self.send(
                router, .get, "/v1/rules", authority: "127.0.0.1:\(Self.port)",
                headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"])
            #expect(status == .ok)
        }
    }

    @Test("another Host (DNS rebinding), another port, or none is 403, for reads too")
    func otherHostsAreRefused() async throws {
        try await TestEngine.with { test in
            let router = test.routes.adminRouter(loopbackPort: Self.port)
            for host in ["evil.example:\(Self.port)", "127.0.0.1:\(Self.port + 1)", "127.0.0.1", "localhost", nil] {
                let (status, body) = try await Self.send(router, .get, "/health", authority: host)
                #expect(status == .forbidden, "\(host ?? "no host")")
                let detail = try Self.error(body)
                #expect(detail.status == 403)
                #expect(detail.message.contains("127.0.0.1, localhost or [::1]"))
            }
            // The HummingbirdTesting client addresses `localhost` without a port: refused likewise.
            _ = try await Application(router: router).test(.router) { client in
                try expectError(try await client.get("/health"), .forbidden)
            }
            // The Unix-socket admin router has no such guard.
            let (status, _) = try await Self.send(test.routes.adminRouter(), .get, "/health", authority: "evil.example")
            #expect(status == .ok)
        }
    }

    @Test("changes from another origin, as a form, or marked cross-site are 403 and append nothing")
    func crossSiteChangesAreRefused() async throws {
        try await TestEngine.with { test in
            let router = test.routes.adminRouter(loopbackPort: Self.port)
            let host = "127.0.0.1:\(Self.port)"
            let points = #"{"op":"plus","value":5}"#
            let head = test.engine.health().logHead
            let refused: [HTTPFields] = [
                [.origin: "http://evil.example", .contentType: "application/json"],
                [.origin: "http://127.0.0.1:\(Self.port + 1)", .contentType: "application/json"],
                [.origin: "null", .contentType: "application/json"],
                [.contentType: "application/x-www-form-urlencoded"],
                [.contentType: "multipart/form-data; boundary=x"],
                [.contentType: "text/plain", HTTPField.Name("Sec-Fetch-Site")!: "cross-site"],
            ]
            for headers in refused {
                let (status, body) = try await Self.send(
                    router, .post, "/v1/contacts/c-1/points", authority: host, headers: headers, body: points)
                #expect(status == .forbidden, "\(headers)")
                #expect(try Self.error(body).status == 403)
            }
            let (rules, _) = try await Self.send(
                router, .put, "/v1/rules", authority: host, headers: [.origin: "http://evil.example"], body: "{}")
            #expect(rules == .forbidden)
            #expect(test.engine.health().logHead == head)

            let allowed: [HTTPFields] = [
                [.contentType: "application/json"],
                [.origin: "http://127.0.0.1:\(Self.port)", .contentType: "application/json"],
                [.origin: "http://localhost:\(Self.port)", HTTPField.Name("Sec-Fetch-Site")!: "same-origin"],
            ]
            for headers in allowed {
                let (status, body) = try await Self.send(
                    router, .post, "/v1/contacts/c-1/points", authority: host, headers: headers, body: points)
                #expect(status == .accepted, "\(headers): \(String(buffer: body))")
            }
            #expect(test.engine.health().logHead == head + 3)
        }
    }
}
