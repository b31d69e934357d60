import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import TallyAPI
import TallyEngine
import TallyServer
import Testing

/// A real ``TallyEngine`` on a temporary LMDB data directory, run as a ServiceLifecycle service (the writer and
/// projector threads working), with the two routers `tally serve` builds on it.
struct TestEngine: Sendable {
    /// The temporary directory: `rules.yaml`, `data/`.
    let directory: String
    let engine: TallyEngine
    let routes: Routes

    /// Rules with an item action, a repeatable one, a group, a URL action and a trigger.
    static let rules = """
        groups: [product]
        actions:
          - { id: download, type: asset.download, delta: 10, repeatable: true }
          - { id: demo, type: form.submit, delta: 25, group: product }
          - { id: pricing, type: url.hit, delta: 5, url: "https://example.com/pricing*", repeatable: true }
        triggers:
          - { id: hot, min_points: 30, events: [{ id: tag-hot, type: tags.modify, add: [hot] }] }

        """

    /// Runs `body` against a running engine on a fresh directory, then shuts the engine down gracefully and
    /// removes the directory. `running: false` starts no service (only what `body` starts itself).
    static func with<T: Sendable>(
        rules: String = TestEngine.rules, running: Bool = true,
        configure: (inout Configuration) -> Void = { _ in },
        _ body: (TestEngine) async throws -> T
    ) async throws -> T {
        let directory = NSTemporaryDirectory() + "tally-server-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try rules.write(toFile: directory + "/rules.yaml", atomically: true, encoding: .utf8)
        var configuration = Configuration()
        configuration.dataDirectory = directory + "/data"
        configuration.rulesPath = directory + "/rules.yaml"
        configuration.mapSize = 1 << 20
        configuration.blockingThreads = 2
        configuration.clockInterval = nil  // time moves only by POST /v1/clock here (D1)
        configure(&configuration)
        var logger = Logger(label: "tally-server-tests")
        logger.logLevel = .critical
        // Opening the environments commits (fsyncs): off the cooperative pool, which the other suites' asynchronous
        // tests share (2 threads here).
        let engine = try await offThePool { [configuration, logger] in
            try TallyEngine(configuration: configuration, logger: logger)
        }
        let test = TestEngine(directory: directory, engine: engine, routes: Routes(engine: engine, logger: logger))
        guard running else { return try await body(test) }
        let group = ServiceGroup(services: [engine], gracefulShutdownSignals: [], logger: logger)
        let service = Task { try await group.run() }
        do {
            // Started: the projector has folded the rules publication the engine appended at start.
            guard await engine.projector.projected.wait(forAtLeast: engine.health().logHead, timeout: .seconds(60))
            else { throw StartupError("the projector did not start") }
            let value = try await body(test)
            await group.triggerGracefulShutdown()
            try await service.value
            return value
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await service.value
            throw error
        }
    }

    /// Runs `body` with a test client on the admin router (or the ingest router).
    func admin<T: Sendable>(
        loopbackPort: Int? = nil, _ body: @Sendable (any TestClientProtocol) async throws -> T
    ) async throws -> T {
        try await Application(router: routes.adminRouter(loopbackPort: loopbackPort)).test(.router, body)
    }

    func ingest<T: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        try await Application(router: routes.ingestRouter()).test(.router, body)
    }
}

/// Decodes a response body with the wire type, strictly: a field renamed on either side fails the test.
func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView))
    } catch {
        Issue.record("cannot decode \(T.self) from \(String(buffer: response.body)): \(error)")
        throw error
    }
}

/// Checks an error answer: the status, and the `ErrorDocument` body repeating it with the line and field.
@discardableResult
func expectError(
    _ response: TestResponse, _ status: HTTPResponse.Status, line: Int? = nil, field: String? = nil,
    containing text: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
) throws -> ErrorDocument.Detail {
    #expect(response.status == status, "\(String(buffer: response.body))", sourceLocation: sourceLocation)
    #expect(response.headers[.contentType] == "application/json", sourceLocation: sourceLocation)
    let document = try decode(ErrorDocument.self, response)
    #expect(document.error.status == status.code, sourceLocation: sourceLocation)
    #expect(document.error.line == line, "\(document.error)", sourceLocation: sourceLocation)
    #expect(document.error.field == field, "\(document.error)", sourceLocation: sourceLocation)
    if let text {
        #expect(document.error.message.contains(text), "\(document.error.message)", sourceLocation: sourceLocation)
    }
    return document.error
}

extension TestClientProtocol {
    /// `POST /v1/events` with NDJSON lines or one JSON object.
    func postEvents(_ body: String, contentType: String = "application/x-ndjson") async throws -> TestResponse {
        try await execute(
            uri: "/v1/events", method: .post, headers: [.contentType: contentType], body: ByteBuffer(string: body))
    }

    /// A JSON body for `method`.
    func send(_ method: HTTPRequest.Method, _ uri: String, json: String) async throws -> TestResponse {
        try await execute(
            uri: uri, method: method, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }

    func get(_ uri: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .get)
    }

    /// Posts events and returns their receipt, which must be a 202.
    func append(_ lines: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> EventReceipt {
        let response = try await postEvents(lines)
        #expect(response.status == .accepted, "\(String(buffer: response.body))", sourceLocation: sourceLocation)
        return try decode(EventReceipt.self, response)
    }
}

/// Runs blocking work (opening environments, which fsyncs; joining the writer's thread) on a thread of its own,
/// so that it does not hold one of the cooperative pool's threads, which the other suites' tests share.
func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    let result: Result<T, any Error> = await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: Result { try work() }) }.start()
    }
    return try result.get()
}

/// ``offThePool(_:)`` for work that cannot fail.
func offThePool(_ work: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { continuation in
        Thread {
            work()
            continuation.resume()
        }.start()
    }
}
