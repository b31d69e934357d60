import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TallyAPI
import TallyCore
import TallyEngine
import TallyServer
import Testing

/// `POST /v1/contacts/{id}` with `fields` (F1) and the fit scores they move (F2).
@Suite("Router: contact fields F1 and fit scores F2")
struct ContactFieldRouteTests {
    static let rules = """
        actions:
          - { id: big, type: contact.field, delta: 50, field: size, gte: 500 }
        """

    @Test("F1 F2 POST /v1/contacts/{id} with fields: 202, the document shows them, null removes one, fit scored")
    func fieldsThroughTheRoute() async throws {
        try await TestEngine.with(rules: Self.rules) { test in
            try await test.admin { client in
                let set = try await client.send(
                    .post, "/v1/contacts/c-1", json: #"{"fields":{"size":800,"title":"CTO","ratio":0.25}}"#)
                #expect(set.status == .accepted)
                let seq = try #require(try decode(EventReceipt.self, set).lastSeq)
                let document = try decode(ContactDocument.self, try await client.get("/v1/contacts/c-1?after=\(seq)"))
                #expect(document.fields == ["size": .number(800), "title": .string("CTO"), "ratio": .number(0.25)])
                #expect(document.points == 50)
                let raw = String(buffer: try await client.get("/v1/contacts/c-1").body)
                #expect(raw.contains(#""size":800"#), "a whole number stays an integer on the wire: \(raw)")

                let page = String(buffer: try await client.get("/ui/contacts/c-1").body)
                #expect(page.contains("<h2>Fields</h2>"))
                #expect(page.contains("<tr><td>size</td><td>800</td></tr>"), "\(page)")
                #expect(page.contains("<tr><td>title</td><td>CTO</td></tr>"))

                let removed = try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{"size":null}}"#)
                let removedSeq = try #require(try decode(EventReceipt.self, removed).lastSeq)
                let after = try decode(
                    ContactDocument.self, try await client.get("/v1/contacts/c-1?after=\(removedSeq)"))
                #expect(after.fields == ["title": .string("CTO"), "ratio": .number(0.25)])
                #expect(after.points == 0)
                let explain = try decode(
                    ExplainDocument.self, try await client.get("/v1/contacts/c-1/explain?after=\(removedSeq)"))
                #expect(explain.entries.map(\.kind) == ["field", "field"])
                #expect(explain.entries.map(\.delta) == [50, -50])
            }
        }
    }

    @Test("F1 POST /v1/contacts/{id}: a bad name, a long string, a bool or too many fields is 400 naming fields")
    func fieldErrors() async throws {
        try await TestEngine.with(rules: Self.rules) { test in
            try await test.admin { client in
                let head = test.engine.health().logHead
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{"Size":1}}"#), .badRequest,
                    field: "fields", containing: "[a-z0-9_.-]{1,64}")
                let long = String(repeating: "x", count: 1025)
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{"a":"\#(long)"}}"#),
                    .badRequest, field: "fields", containing: "1025 bytes")
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{"a":true}}"#), .badRequest)
                let many = (0...100).map { #""f\#($0)":1"# }.joined(separator: ",")
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{\#(many)}}"#), .badRequest,
                    field: "fields", containing: "at most 100 fields")
                #expect(test.engine.health().logHead == head)
                // 100 fields are fine; one more new one is refused against the contact's state, a change is not.
                let hundred = (0..<100).map { #""f\#($0)":1"# }.joined(separator: ",")
                let ok = try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{\#(hundred)}}"#)
                #expect(ok.status == .accepted)
                let seq = try #require(try decode(EventReceipt.self, ok).lastSeq)
                _ = try await client.get("/v1/contacts/c-1?after=\(seq)")
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{"extra":1}}"#), .badRequest,
                    field: "fields", containing: "would give it 101")
                let change = try await client.send(.post, "/v1/contacts/c-1", json: #"{"fields":{"f0":2,"f1":null}}"#)
                #expect(change.status == .accepted)
            }
        }
    }
}
