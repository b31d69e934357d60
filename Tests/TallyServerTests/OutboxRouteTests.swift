import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TallyAPI
import TallyServer
import Testing

@testable import TallyEngine

/// The outbox routes of the admin socket (T6, T7): the listing and the retry by hand.
@Suite("Router: outbox routes")
struct OutboxRouteTests {
    /// A trigger that pushes to an integration nobody listens on: every attempt fails to connect.
    static let rules = """
        actions:
          - { id: download, type: asset.download, delta: 10, repeatable: true }
        triggers:
          - { id: hot, min_points: 10, events: [{ id: crm, type: integration.push, integration: crm }] }

        """

    /// The engine with the unreachable integration and one attempt per entry: parked at the first failure.
    static func with(
        _ body: @escaping @Sendable (TestEngine, any TestClientProtocol) async throws -> Void
    )
        async throws
    {
        try await TestEngine.with(
            rules: rules,
            configure: {
                $0.integrations["crm"] = .init(url: "http://127.0.0.1:1/hook", headers: [:])
                $0.outbox.attempts = 1
            }
        ) { test in
            try await test.admin { client in try await body(test, client) }
        }
    }

    /// Polls `GET /v1/outbox` until `key` is in `state`.
    static func entry(
        _ client: any TestClientProtocol, _ key: String, state: String
    ) async throws -> OutboxItem {
        for _ in 0..<400 {
            let listed = try decode(OutboxList.self, try await client.get("/v1/outbox"))
            if let entry = listed.entries.first(where: { $0.key == key }), entry.state == state { return entry }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("\(key) never reached \(state)")
        throw CancellationError()
    }

    @Test("T6 T7 GET /v1/outbox lists the fired entry, parked after its only attempt with the error; ?state= filters")
    func listing() async throws {
        try await Self.with { _, client in
            _ = try await client.append(#"{"type":"asset.download","contact":"c-1","item":"guide"}"#)
            let parked = try await Self.entry(client, "c-1/hot/crm", state: "failed")
            #expect(parked.kind == "integration.push")
            #expect(parked.contact == "c-1" && parked.trigger == "hot" && parked.event == "crm")
            #expect(parked.attempts == 1)
            #expect(parked.lastError?.isEmpty == false)
            #expect(parked.dueAt == nil && parked.deliveredAt == nil)
            let failed = try decode(OutboxList.self, try await client.get("/v1/outbox?state=failed"))
            #expect(failed.entries.map(\.key) == ["c-1/hot/crm"])
            let delivered = try decode(OutboxList.self, try await client.get("/v1/outbox?state=delivered"))
            #expect(delivered.entries.isEmpty)
            try expectError(try await client.get("/v1/outbox?state=lost"), .badRequest, field: "state")
        }
    }

    @Test("T6 POST /v1/outbox/{key}/retry: 200 with the entry due again; 404 for an unknown key, 400 for a bad one")
    func retry() async throws {
        try await Self.with { _, client in
            _ = try await client.append(#"{"type":"asset.download","contact":"c-1","item":"guide"}"#)
            _ = try await Self.entry(client, "c-1/hot/crm", state: "failed")
            let response = try await client.execute(uri: "/v1/outbox/c-1%2Fhot%2Fcrm/retry", method: .post)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let retried = try decode(OutboxItem.self, response)
            #expect(retried.key == "c-1/hot/crm")
            #expect(retried.state == "pending" && retried.attempts == 0)
            // The retry is an event: the entry is attempted again, and parked again.
            let again = try await Self.entry(client, "c-1/hot/crm", state: "failed")
            #expect(again.attempts == 1)
            try expectError(
                try await client.execute(uri: "/v1/outbox/nobody%2Fhot%2Fcrm/retry", method: .post), .notFound,
                containing: "no outbox entry")
            try expectError(
                try await client.execute(uri: "/v1/outbox/%ZZ/retry", method: .post), .badRequest,
                containing: "outbox key")
        }
    }
}
