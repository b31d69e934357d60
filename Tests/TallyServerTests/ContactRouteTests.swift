import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TallyAPI
import TallyCore
import TallyEngine
import TallyServer
import Testing

/// The contact routes of the admin socket: state, explain, manual points (M1) and contact updates.
@Suite("Router: contact routes")
struct ContactRouteTests {
    @Test("GET /v1/contacts/{id}?after=SEQ reads your own write: S1/S4 scores, a group, T5 the trigger's tag")
    func contactAfterWrite() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let receipt = try await client.append(
                    """
                    {"type":"asset.download","contact":"c-1","item":"guide"}
                    {"type":"asset.download","contact":"c-1","item":"guide"}
                    {"type":"form.submit","contact":"c-1","item":"demo"}
                    {"type":"asset.download","contact":"c-1","item":"roi"}
                    """)
                let lastSeq = try #require(receipt.lastSeq)
                let response = try await client.get("/v1/contacts/c-1?after=\(lastSeq)")
                #expect(response.status == .ok)
                let document = try decode(ContactDocument.self, response)
                #expect(
                    document
                        == ContactDocument(
                            contact: "c-1", points: 30, groups: ["product": 25], tags: ["hot"],
                            triggers: ["hot/tag-hot"]))
            }
        }
    }

    @Test("GET /v1/contacts/{id}: 404 for an unknown contact, 400 for an id longer than 128 bytes or a bad ?after=")
    func contactErrors() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                try expectError(try await client.get("/v1/contacts/nobody"), .notFound, containing: "nobody")
                let long = String(repeating: "x", count: 129)
                try expectError(try await client.get("/v1/contacts/\(long)"), .badRequest, containing: "contact id")
                try expectError(
                    try await client.get("/v1/contacts/\(long)/explain"), .badRequest, containing: "contact id")
                try expectError(try await client.get("/v1/contacts/c-1?after=soon"), .badRequest, containing: "after")
                // Percent-encoded ids are decoded: the id is the bytes the events named.
                _ = try await client.append(#"{"type":"asset.download","contact":"a b/é","item":"guide"}"#)
                let encoded = try await client.get("/v1/contacts/a%20b%2F%C3%A9?after=2")
                #expect(try decode(ContactDocument.self, encoded).contact == "a b/é")
            }
        }
    }

    @Test("?after=SEQ beyond the log answers 504 after limits.read_after_timeout, naming the sequence number")
    func readAfterTimesOut() async throws {
        try await TestEngine.with(configure: { $0.limits.readAfterTimeout = 50 }) { test in
            try await test.admin { client in
                _ = try await client.append(#"{"type":"asset.download","contact":"c-1","item":"guide"}"#)
                try expectError(
                    try await client.get("/v1/contacts/c-1?after=1000"), .gatewayTimeout, containing: "1000")
                try expectError(
                    try await client.get("/v1/contacts/c-1/explain?after=1000"), .gatewayTimeout, containing: "1000")
            }
        }
    }

    @Test("A6 GET /v1/contacts/{id}?at=T answers the scores as they stood at T; a bad T is 400 naming `at`")
    func scoreAtTime() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let receipt = try await client.append(
                    """
                    {"type":"asset.download","contact":"c-1","item":"g","at":"2026-01-01T00:00:00Z"}
                    {"type":"form.submit","contact":"c-1","item":"demo","at":"2026-02-01T00:00:00Z"}
                    {"type":"asset.download","contact":"c-1","item":"g","at":"2026-03-01T00:00:00Z"}
                    """)
                let after = try #require(receipt.lastSeq)
                let january = try decode(
                    ContactDocument.self,
                    try await client.get("/v1/contacts/c-1?after=\(after)&at=2026-01-15T00:00:00Z"))
                #expect(january.points == 10)
                #expect(january.groups["product", default: 0] == 0)
                #expect(january.at?.hasPrefix("2026-01-15T00:00:00") == true, "\(january)")
                let february = try decode(
                    ContactDocument.self, try await client.get("/v1/contacts/c-1?at=1771000000000"))  // 2026-02-13
                #expect(february.points == 10)
                #expect(february.groups == ["product": 25])
                let now = try decode(ContactDocument.self, try await client.get("/v1/contacts/c-1"))
                #expect(now.points == 20)
                #expect(now.at == nil)
                try expectError(try await client.get("/v1/contacts/c-1?at=last-week"), .badRequest, field: "at")
                try expectError(try await client.get("/v1/contacts/nobody?at=1"), .notFound)
            }
        }
    }

    @Test("A2 explain: the entries in log order summed by action; ?limit=N keeps the newest N; bounds are 400")
    func explain() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let receipt = try await client.append(
                    """
                    {"type":"asset.download","contact":"c-1","item":"g","id":"d-1"}
                    {"type":"form.submit","contact":"c-1","item":"demo"}
                    {"type":"asset.download","contact":"c-1","item":"g"}
                    """)
                let after = try #require(receipt.lastSeq)
                let response = try await client.get("/v1/contacts/c-1/explain?after=\(after)")
                #expect(response.status == .ok)
                let explain = try decode(ExplainDocument.self, response)
                #expect(explain.contact == "c-1")
                #expect(explain.points == 20)
                #expect(explain.groups == ["product": 25])
                #expect(explain.byAction == ["download": 20])
                #expect(explain.actions == [.init(action: "download", points: 20)])
                #expect(explain.entriesTotal == 3)
                #expect(explain.entries.map(\.action) == ["download", "demo", "download"])
                #expect(explain.entries.map(\.delta) == [10, 25, 10])
                #expect(explain.entries.map(\.scoreAfter) == [10, 25, 20])
                #expect(explain.entries.map(\.group) == [nil, "product", nil])
                #expect(explain.entries.map(\.seq) == [after - 2, after - 1, after])
                #expect(explain.entries.first?.id == "d-1")
                #expect(
                    explain.entries.allSatisfy { $0.kind == "action" && $0.rulesVersion == 1 && !$0.reason.isEmpty })
                #expect(explain.at == nil)

                let newest = try decode(ExplainDocument.self, try await client.get("/v1/contacts/c-1/explain?limit=1"))
                #expect(newest.entries.map(\.seq) == [after])
                #expect(newest.entriesTotal == 3)
                #expect(newest.byAction == ["download": 20], "the sums cover every entry, not only the newest")
                let none = try decode(ExplainDocument.self, try await client.get("/v1/contacts/c-1/explain?limit=0"))
                #expect(none.entries.isEmpty)
                for bad in ["-1", "100001", "ten", "1.5"] {
                    try expectError(
                        try await client.get("/v1/contacts/c-1/explain?limit=\(bad)"), .badRequest, field: "limit")
                }
                let past = try decode(
                    ExplainDocument.self, try await client.get("/v1/contacts/c-1/explain?at=\(Int64.max)"))
                #expect(past.points == 20)
                #expect(past.at != nil)
                try expectError(try await client.get("/v1/contacts/c-1/explain?at=never"), .badRequest, field: "at")
                try expectError(try await client.get("/v1/contacts/nobody/explain"), .notFound, containing: "nobody")
            }
        }
    }

    @Test("POST /v1/contacts/{id}: contact.update is 202 and sets the addresses; 400 names the field at fault")
    func contactUpdate() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let response = try await client.send(
                    .post, "/v1/contacts/c-1", json: #"{"email":"lead@example.com","owner_email":"rep@example.com"}"#)
                #expect(response.status == .accepted)
                let receipt = try decode(EventReceipt.self, response)
                #expect(receipt.accepted == 1)
                let after = try #require(receipt.lastSeq)
                let document = try decode(ContactDocument.self, try await client.get("/v1/contacts/c-1?after=\(after)"))
                #expect(document.email == "lead@example.com")
                #expect(document.ownerEmail == "rep@example.com")
                let owner = try await client.send(
                    .post, "/v1/contacts/c-1", json: #"{"owner_email":"boss@example.com"}"#)
                let ownerSeq = try #require(try decode(EventReceipt.self, owner).lastSeq)
                let updated = try decode(
                    ContactDocument.self, try await client.get("/v1/contacts/c-1?after=\(ownerSeq)"))
                #expect(updated.email == "lead@example.com", "an address not given is kept")
                #expect(updated.ownerEmail == "boss@example.com")

                let head = test.engine.health().logHead
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: "{}"), .badRequest, field: "email")
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"email":"not an address"}"#), .badRequest,
                    field: "email")
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"owner_email":"x@"}"#), .badRequest,
                    field: "owner_email")
                try expectError(try await client.send(.post, "/v1/contacts/c-1", json: #"{"email":5}"#), .badRequest)
                try expectError(try await client.send(.post, "/v1/contacts/c-1", json: "email=x"), .badRequest)
                let long = String(repeating: "x", count: 129)
                try expectError(
                    try await client.send(.post, "/v1/contacts/\(long)", json: #"{"email":"a@example.com"}"#),
                    .badRequest, containing: "contact id")
                #expect(test.engine.health().logHead == head)
            }
        }
    }

    @Test("M1 POST /v1/contacts/{id}/points: every op is 202 and the audit holds the real delta")
    func pointsOperations() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                var last: UInt64 = 0
                for (op, value) in [("plus", 10), ("minus", 3), ("times", 4), ("divide", 3), ("set", 21)] {
                    let response = try await client.send(
                        .post, "/v1/contacts/m-1/points", json: #"{"op":"\#(op)","value":\#(value),"reason":"\#(op)"}"#)
                    #expect(response.status == .accepted, "\(op)")
                    let receipt = try decode(EventReceipt.self, response)
                    #expect(receipt.accepted == 1)
                    last = try #require(receipt.lastSeq)
                }
                let group = try await client.send(
                    .post, "/v1/contacts/m-1/points", json: #"{"op":"minus","value":7,"group":"product"}"#)
                last = try #require(try decode(EventReceipt.self, group).lastSeq)
                let explain = try decode(
                    ExplainDocument.self, try await client.get("/v1/contacts/m-1/explain?after=\(last)"))
                // 0 +10 → 10, −3 → 7, ×4 → 28, ÷3 → 9 (toward zero), set 21 → 21.
                #expect(explain.entries.map(\.delta) == [10, -3, 21, -19, 12, -7])
                #expect(explain.entries.map(\.scoreAfter) == [10, 7, 28, 9, 21, -7])
                #expect(explain.entries.allSatisfy { $0.kind == "manual" })
                for (entry, op) in zip(explain.entries, ["plus", "minus", "times", "divide", "set"]) {
                    #expect(
                        entry.reason.hasPrefix("manual \(op) ") && entry.reason.contains(": \(op) "), "\(entry.reason)")
                }
                #expect(explain.points == 21)
                #expect(explain.groups == ["product": -7])
            }
        }
    }

    @Test("M1 POST /v1/contacts/{id}/points: 400 names the field at fault and appends nothing")
    func pointsErrors() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let head = test.engine.health().logHead
                let cases: [(String, String?)] = [
                    (#"{"value":1}"#, "op"),
                    (#"{"op":"plus"}"#, "value"),
                    (#"{"op":"plus","value":1.5}"#, "value"),
                    (#"{"op":"plus","value":"1"}"#, "value"),
                    (#"{"op":"plus","value":9223372036854775808}"#, "value"),
                    (#"{"op":7,"value":1}"#, "op"),
                    (#"{"op":"pow","value":2}"#, "op"),
                    (#"{"op":"divide","value":0}"#, "value"),
                    (#"{"op":"plus","value":1,"group":"nope"}"#, "group"),
                    (#"{"op":"plus","value":1,"group":5}"#, "group"),
                    (#"{"op":"plus","value":1,"reason":"\#(String(repeating: "r", count: 1025))"}"#, "reason"),
                    (#"{"op":"plus","value":1,"reason":false}"#, "reason"),
                    ("[1]", nil),
                    ("plus 1", nil),
                ]
                for (body, field) in cases {
                    let response = try await client.send(.post, "/v1/contacts/m-1/points", json: body)
                    try expectError(response, .badRequest, field: field)
                }
                #expect(test.engine.health().logHead == head)
            }
        }
    }
}
