import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TallyAPI
import TallyEngine
import TallyServer
import Testing

/// The behaviour routes both sockets serve (SPEC §7): `POST /v1/events`, `GET /health`, `GET /v1/pixel.gif`; and
/// the administrative routes the ingest socket does not have.
@Suite("Router: ingest routes")
struct IngestRouteTests {
    @Test("POST /v1/events NDJSON: 202 with the receipt's sequence numbers; S6 a retry with seen ids is duplicates")
    func ndjsonReceiptAndS6Retry() async throws {
        try await TestEngine.with { test in
            try await test.ingest { client in
                let head = test.engine.health().logHead
                let lines = """
                    {"type":"asset.download","contact":"c-1","item":"guide","id":"e-1"}
                    {"type":"email.open","contact":"c-1","item":"news","id":"e-2","at":"2026-01-01T00:00:00Z"}
                    {"type":"url.hit","contact":"c-2","url":"https://example.com/pricing","at":1767225600000,"id":"e-3"}

                    """
                let receipt = try await client.append(lines)
                #expect(receipt == EventReceipt(accepted: 3, duplicates: 0, firstSeq: head + 1, lastSeq: head + 3))
                let retry = try await client.append(lines)
                #expect(retry.accepted == 0)
                #expect(retry.duplicates == 3)
                #expect(test.engine.health().logHead == head + 3)
            }
        }
    }

    @Test("POST /v1/events with application/json: one object, 202")
    func singleJSONObject() async throws {
        try await TestEngine.with { test in
            try await test.ingest { client in
                let response = try await client.postEvents(
                    #"{"type":"form.submit","contact":"c-1","item":"demo"}"#, contentType: "application/json")
                #expect(response.status == .accepted)
                #expect(response.headers[.contentType] == "application/json")
                let receipt = try decode(EventReceipt.self, response)
                #expect(receipt.accepted == 1)
                #expect(receipt.firstSeq == receipt.lastSeq)
                #expect(receipt.lastSeq == test.engine.health().logHead)
            }
        }
    }

    @Test("POST /v1/events: a bad line rejects the whole request with 400 naming its line and field (SPEC §1)")
    func badLineNamesLineAndField() async throws {
        try await TestEngine.with { test in
            try await test.ingest { client in
                let head = test.engine.health().logHead
                let good = #"{"type":"asset.download","contact":"c-1","item":"guide"}"#
                let cases: [(String, Int, String)] = [
                    (#"{"type":"asset.download","item":"guide"}"#, 2, "contact"),
                    (#"{"type":"asset.downloaded","contact":"c-1"}"#, 2, "type"),
                    (#"{"type":"asset.download","contact":"c-1"}"#, 2, "item"),
                    (#"{"type":"url.hit","contact":"c-1","url":"/pricing"}"#, 2, "url"),
                    (#"{"type":"asset.download","contact":"c-1","item":"g","at":"yesterday"}"#, 2, "at"),
                    (#"{"type":"asset.download","contact":7,"item":"g"}"#, 2, "contact"),
                    (
                        #"{"type":"asset.download","contact":"\#(String(repeating: "x", count: 129))","item":"g"}"#, 2,
                        "contact"
                    ),
                ]
                for (bad, line, field) in cases {
                    let response = try await client.postEvents(good + "\n" + bad + "\n" + good + "\n")
                    try expectError(response, .badRequest, line: line, field: field)
                }
                let json = try await client.postEvents(#"{"type":"email.open"}"#, contentType: "application/json")
                try expectError(json, .badRequest, line: 1, field: "contact")
                #expect(test.engine.health().logHead == head, "a rejected request appends nothing")
            }
        }
    }

    @Test("POST /v1/events: an administrative type on ingest is 403 naming the line and field `type`")
    func administrativeTypeIsForbidden() async throws {
        try await TestEngine.with { test in
            for router in ["ingest", "admin"] {
                let check: @Sendable (any TestClientProtocol) async throws -> Void = { client in
                    for type in ["points.change", "points.set", "contact.update", "rules.published", "rebuild"] {
                        let response = try await client.postEvents(
                            #"{"type":"email.open","contact":"a","item":"n"}"# + "\n"
                                + #"{"type":"\#(type)","contact":"a"}"#)
                        try expectError(response, .forbidden, line: 2, field: "type", containing: "administrative")
                    }
                }
                if router == "ingest" { try await test.ingest(check) } else { try await test.admin(check) }
            }
        }
    }

    @Test("POST /v1/events: a body over limits.max_body_bytes is 413; a line over max_line_bytes is 400 naming it")
    func limits() async throws {
        try await TestEngine.with(configure: {
            $0.limits.maxBodyBytes = 1024
            $0.limits.maxLineBytes = 200
        }) { test in
            try await test.ingest { client in
                let head = test.engine.health().logHead
                let line = #"{"type":"email.open","contact":"c-1","item":"news"}"# + "\n"
                let big = try await client.postEvents(String(repeating: line, count: 30))
                try expectError(big, .contentTooLarge, containing: "1024")
                let long = #"{"type":"email.open","contact":"c-1","item":"\#(String(repeating: "n", count: 200))"}"#
                let tooLong = try await client.postEvents(line + long + "\n")
                try expectError(tooLong, .badRequest, line: 2, containing: "200")
                #expect(test.engine.health().logHead == head)
            }
        }
    }

    @Test("POST /v1/events: an empty body is 400; a content type other than application/json is read as NDJSON")
    func emptyBodyAndContentTypes() async throws {
        try await TestEngine.with { test in
            try await test.ingest { client in
                try expectError(try await client.postEvents(""), .badRequest, containing: "no event")
                try expectError(try await client.postEvents("\n\n"), .badRequest, containing: "no event")
                // There is no 415: NDJSON is the default reading of any body that is not application/json.
                let lines =
                    #"{"type":"email.open","contact":"c-1","item":"n"}"# + "\n"
                    + #"{"type":"email.open","contact":"c-2","item":"n"}"#
                let plain = try await client.postEvents(lines, contentType: "text/plain")
                #expect(plain.status == .accepted)
                #expect(try decode(EventReceipt.self, plain).accepted == 2)
                let none = try await client.execute(uri: "/v1/events", method: .post, body: ByteBuffer(string: lines))
                #expect(try decode(EventReceipt.self, none).duplicates == 0)
            }
        }
    }

    @Test("SPEC §8 a log that takes no writes (shutting down) answers 503 to every append and appends nothing")
    func unavailableLog() async throws {
        try await TestEngine.with(running: false) { test in
            test.engine.writer.start()
            await offThePool { test.engine.writer.stop() }
            let head = test.engine.health().logHead
            try await test.admin { client in
                let event = #"{"type":"email.open","contact":"c-1","item":"n"}"#
                try expectError(try await client.postEvents(event), .serviceUnavailable, containing: "shutting down")
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1/points", json: #"{"op":"plus","value":1}"#),
                    .serviceUnavailable, containing: "shutting down")
                try expectError(
                    try await client.send(.post, "/v1/contacts/c-1", json: #"{"email":"a@example.com"}"#),
                    .serviceUnavailable)
                try expectError(
                    try await client.execute(
                        uri: "/v1/rules", method: .put, body: ByteBuffer(string: TestEngine.rules)),
                    .serviceUnavailable)
                try expectError(try await client.execute(uri: "/v1/rebuild", method: .post), .serviceUnavailable)
                try expectError(
                    try await client.execute(
                        uri: "/v1/import/points", method: .post, body: ByteBuffer(string: "contact,points\nx,1\n")),
                    .serviceUnavailable)
                Self.expectGIF(try await client.get("/v1/pixel.gif?contact=c-1&url=https://example.com/pricing"))
            }
            #expect(test.engine.health().logHead == head)
        }
    }

    @Test("GET /health: 200 with the log head and the projected sequence number")
    func health() async throws {
        try await TestEngine.with { test in
            try await test.ingest { client in
                let receipt = try await client.append(#"{"type":"email.open","contact":"c-1","item":"n"}"#)
                try await test.engine.awaitProjection(through: receipt.lastSeq ?? 0)
                let response = try await client.get("/health")
                #expect(response.status == .ok)
                let health = try decode(HealthStatus.self, response)
                #expect(health == HealthStatus(status: "ok", logHead: 2, projected: 2, error: nil))
            }
        }
    }

    @Test("GET /v1/pixel.gif records a url.hit from the query or the cookies and always answers the GIF")
    func pixel() async throws {
        try await TestEngine.with { test in
            try await test.ingest { client in
                let head = test.engine.health().logHead
                let fromQuery = try await client.get(
                    "/v1/pixel.gif?contact=p-1&url=https%3A%2F%2Fexample.com%2Fpricing&session=s-1&id=hit-1")
                Self.expectGIF(fromQuery)
                #expect(test.engine.health().logHead == head + 1)
                let fromCookies = try await client.execute(
                    uri: "/v1/pixel.gif?url=https://example.com/pricing/plans", method: .get,
                    headers: [.cookie: "other=1; tally_contact=p%2D2; tally_session=s-2"])
                Self.expectGIF(fromCookies)
                #expect(test.engine.health().logHead == head + 2)
                // A retried hit with the same id is not recorded twice (S6).
                Self.expectGIF(
                    try await client.get("/v1/pixel.gif?contact=p-1&url=https://example.com/pricing&id=hit-1"))
                // Nothing to record: a relative URL, or no URL. Still the image, never an error, and no cookie.
                let relative = try await client.get("/v1/pixel.gif?contact=p-3&url=/pricing")
                Self.expectGIF(relative)
                Self.expectGIF(try await client.get("/v1/pixel.gif"))
                #expect(relative.headers[.setCookie] == nil)
                #expect(test.engine.health().logHead == head + 2)
                try await test.engine.awaitProjection(through: head + 2)
                #expect(try test.engine.contact("p-1")?.points == 5)
                #expect(try test.engine.contact("p-2")?.points == 5)
            }
        }
    }

    @Test("I7 a pixel hit without a contact records under a new anonymous id set as the tally_anon cookie")
    func anonymousPixel() async throws {
        try await TestEngine.with { test in
            try await test.ingest { client in
                let head = test.engine.health().logHead
                let first = try await client.get("/v1/pixel.gif?url=https://example.com/pricing")
                Self.expectGIF(first)
                let cookie = try #require(first.headers[.setCookie])
                #expect(cookie.hasSuffix("; Path=/; Max-Age=31536000; SameSite=Lax"), "\(cookie)")
                #expect(!cookie.contains("HttpOnly"))
                let pair = try #require(cookie.split(separator: ";").first)
                #expect(pair.hasPrefix("tally_anon=anon-"))
                let id = String(pair.dropFirst("tally_anon=".count))
                #expect(id.count == 31)
                // Later hits with the cookie are the same visitor, and set nothing.
                let second = try await client.execute(
                    uri: "/v1/pixel.gif?url=https://example.com/pricing/plans", method: .get,
                    headers: [.cookie: String(pair)])
                Self.expectGIF(second)
                #expect(second.headers[.setCookie] == nil)
                // A known contact (query or tally_contact) wins over the anonymous cookie.
                let known = try await client.execute(
                    uri: "/v1/pixel.gif?contact=k-1&url=https://example.com/pricing", method: .get,
                    headers: [.cookie: String(pair)])
                #expect(known.headers[.setCookie] == nil)
                // Another browser without the cookie is another visitor.
                let other = try await client.get("/v1/pixel.gif?url=https://example.com/pricing")
                #expect(other.headers[.setCookie] != cookie)
                try await test.engine.awaitProjection(through: head + 4)
                #expect(try test.engine.contact(id)?.visits.values.map(\.hits).max() == 2)
                #expect(try test.engine.contact(id)?.points == 10)
                #expect(try test.engine.contact("k-1")?.points == 5)
            }
        }
    }

    static func expectGIF(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == .ok, sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "image/gif", sourceLocation: sourceLocation)
        #expect(response.headers[.cacheControl]?.contains("no-store") == true, sourceLocation: sourceLocation)
        #expect(
            Array(response.body.readableBytesView.prefix(6)) == Array("GIF89a".utf8), sourceLocation: sourceLocation)
        #expect(response.body.readableBytes == 43, sourceLocation: sourceLocation)
    }

    @Test("the ingest socket has no administrative route: each answers 404 there (SPEC §7)")
    func adminRoutesAreNotOnIngest() async throws {
        try await TestEngine.with { test in
            let routes: [(HTTPRequest.Method, String)] = [
                (.get, "/v1/contacts/c-1"), (.post, "/v1/contacts/c-1"), (.get, "/v1/contacts/c-1/explain"),
                (.post, "/v1/contacts/c-1/points"), (.get, "/v1/rules"), (.put, "/v1/rules"), (.post, "/v1/rebuild"),
                (.get, "/v1/rebuild"), (.post, "/v1/verify"), (.post, "/v1/import/points"),
                (.post, "/v1/backup?dir=/tmp/x"), (.get, "/v1/outbox"), (.post, "/v1/outbox/k/retry"),
                (.get, "/metrics"), (.get, "/ui"), (.get, "/ui/search?contact=c-1"), (.get, "/ui/contacts/c-1"),
            ]
            let head = test.engine.health().logHead
            try await test.ingest { client in
                for (method, uri) in routes {
                    let response = try await client.execute(
                        uri: uri, method: method, body: ByteBuffer(string: #"{"op":"plus","value":1}"#))
                    #expect(response.status == .notFound, "\(method) \(uri)")
                }
            }
            #expect(test.engine.health().logHead == head)
        }
    }

    @Test(
        "the 202's receipt, written without an encoder, is byte for byte what JSONEncoder writes (sorted keys, absent sequence numbers left out)",
        arguments: [
            EventReceipt(accepted: 3, duplicates: 1, firstSeq: 17, lastSeq: 19),
            EventReceipt(accepted: 0, duplicates: 2, firstSeq: nil, lastSeq: nil),
            EventReceipt(accepted: 1, duplicates: 0, firstSeq: UInt64.max, lastSeq: UInt64.max),
        ])
    func receiptJSON(_ receipt: EventReceipt) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(receipt.json == String(decoding: try encoder.encode(receipt), as: UTF8.self))
    }
}
