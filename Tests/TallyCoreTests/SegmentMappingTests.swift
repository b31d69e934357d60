import Foundation
import TallyCore
import Testing

/// The receive time given to calls without a `timestamp`.
private let received: Int64 = 1_700_000_000_123
/// 2026-11-30T23:47:30.437Z, the `timestamp` of the captured client payloads.
private let capturedAt: Int64 = 1_796_082_450_437

private let mapping = SegmentMapping(events: ["Whitepaper Downloaded": .assetDownload, "Demo Requested": .formSubmit])

private func json(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

private func map(
    _ text: String, route: SegmentRoute = .batch, viaIngest: Bool = true, with mapping: SegmentMapping = mapping
) throws -> SegmentBatch {
    try mapping.batch(try json(text), route: route, receivedAt: received, viaIngest: viaIngest)
}

/// The error mapping `text` throws, recording an issue when it maps.
private func rejection(
    _ text: String, route: SegmentRoute = .batch, sourceLocation: SourceLocation = #_sourceLocation
) throws -> SegmentCallError? {
    do {
        let batch = try mapping.batch(try json(text), route: route, receivedAt: received, viaIngest: true)
        Issue.record("mapped to \(batch.events)", sourceLocation: sourceLocation)
        return nil
    } catch let error as SegmentCallError {
        return error
    }
}

@Suite("I6 Segment calls mapped to events")
struct SegmentMappingTests {
    @Test("I6 a batch of page, track (mapped, by name and unmapped), identify and alias calls, in call order")
    func aMixedBatch() throws {
        let batch = try map(
            """
            {"batch": [
              {"type": "page", "userId": null, "anonymousId": "anon-1", "messageId": "m1",
               "timestamp": "2026-11-30T23:47:30.437+00:00", "properties": {"url": "https://x.com/pricing"},
               "context": {"sessionId": "s-1", "library": {"name": "analytics.js"}}, "integrations": {"All": true}},
              {"type": "track", "anonymousId": "anon-1", "event": "Whitepaper Downloaded", "messageId": "m2",
               "properties": {"item": "wp-7", "title": "ignored"}},
              {"type": "track", "userId": "u-1", "event": "form.submit", "messageId": "m3",
               "properties": {"item": "demo-form"}},
              {"type": "track", "userId": "u-1", "event": "Button Clicked", "messageId": "m4"},
              {"type": "identify", "userId": "u-1", "anonymousId": "anon-1", "messageId": "m5",
               "traits": {"email": "ada@example.com"}},
              {"type": "identify", "userId": "u-1", "anonymousId": null, "messageId": "m6"},
              {"type": "alias", "previousId": "old-id", "userId": "u-1", "messageId": "m7"},
              {"type": "group", "userId": "u-1", "groupId": "acme"}
            ], "sentAt": "2026-11-30T23:47:31.000Z", "writeKey": "key"}
            """)
        #expect(batch.calls == 8)
        #expect(batch.ignored == [.unmappedEvent: 1, .oneIdentity: 1, .unsupportedType: 1])
        #expect(
            batch.events == [
                Event(
                    type: .urlHit, contact: "anon-1", at: capturedAt, id: "m1", url: "https://x.com/pricing",
                    session: "s-1"),
                Event(type: .assetDownload, contact: "anon-1", at: received, id: "m2", item: "wp-7"),
                Event(type: .formSubmit, contact: "u-1", at: received, id: "m3", item: "demo-form"),
                Event.merge(from: "anon-1", into: "u-1", at: received, id: "m5", viaIngest: true),
                Event.merge(from: "old-id", into: "u-1", at: received, id: "m7", viaIngest: true),
            ])
    }

    @Test("I6 a bad call is named by its index and field")
    func badCallsNameTheirIndexAndField() throws {
        let prefix = #"{"batch": [{"type": "page", "userId": "u", "properties": {"url": "https://x.com/"}}, "#
        let cases: [(String, String, String)] = [
            (#"{"type": "page", "userId": "u"}"#, "batch[1].properties.url", "is required"),
            (
                #"{"type": "page", "userId": "u", "properties": {"url": "/pricing"}}"#, "batch[1].properties.url",
                "absolute URL"
            ),
            (
                #"{"type": "page", "userId": "u", "context": {"page": {"url": true}}}"#, "batch[1].context.page.url",
                "must be a string"
            ),
            (#"{"type": "track", "userId": "u"}"#, "batch[1].event", "is required"),
            (
                #"{"type": "track", "userId": "u", "event": "Whitepaper Downloaded"}"#, "batch[1].properties.item",
                "asset.download"
            ),
            (
                #"{"type": "track", "event": "form.submit", "properties": {"item": "f"}}"#, "batch[1].userId",
                "userId or anonymousId is required"
            ),
            (#"{"type": "track", "userId": true, "event": "x"}"#, "batch[1].userId", "must be a string"),
            (
                #"{"type": "page", "userId": "u", "timestamp": "yesterday", "properties": {"url": "https://x.com/"}}"#,
                "batch[1].timestamp", "RFC 3339"
            ),
            (
                #"{"type": "page", "userId": "u", "messageId": "\#(String(repeating: "m", count: 129))"}"#,
                "batch[1].messageId", "1–128 bytes"
            ),
            (#"{"type": "alias", "userId": "u"}"#, "batch[1].previousId", "is required"),
            (#"{"type": "identify"}"#, "batch[1].userId", "userId or anonymousId is required"),
            (#"{"userId": "u"}"#, "batch[1].type", "is required"),
            (#"{"type": "purchase", "userId": "u"}"#, "batch[1].type", "must be one of"),
            (#"{"type": "page", "userId": "u", "properties": [1]}"#, "batch[1].properties", "must be an object"),
            (#""page""#, "batch[1]", "must be a JSON object"),
        ]
        for (call, field, message) in cases {
            let error = try rejection(prefix + call + "]}")
            #expect(error?.field == field, "\(call)")
            #expect(error?.message.contains(message) == true, "\(call): \(error?.message ?? "")")
            #expect(error?.description.hasPrefix(field + ": ") == true)
        }
        #expect(try rejection(#"{"calls": []}"#)?.field == "batch")
        #expect(try rejection(#"{"batch": []}"#)?.message == "holds no call")
        #expect(try rejection(#"[1]"#)?.field == "batch")
    }

    @Test("I6 a single call's fields are named without a batch index, and its type must match the route")
    func singleCalls() throws {
        let page = try map(
            #"{"anonymousId": "a", "properties": {"url": "https://x.com/"}}"#, route: .call(.page))
        #expect(page.events.map(\.type) == [.urlHit] && page.calls == 1)
        #expect(try rejection(#"{"anonymousId": "a"}"#, route: .call(.page))?.field == "properties.url")
        let mismatch = try rejection(#"{"type": "track", "anonymousId": "a"}"#, route: .call(.page))
        #expect(mismatch?.field == "type")
        #expect(try rejection(#"[]"#, route: .call(.track))?.field == "body")
    }

    @Test("I6 null and empty ids count as absent; the contact is userId, else anonymousId")
    func nullIDs() throws {
        let batch = try map(
            """
            {"batch": [
              {"type": "page", "userId": null, "anonymousId": "anon-2", "properties": {"url": "https://x.com/a"}},
              {"type": "page", "userId": "", "anonymousId": "anon-2", "properties": {"url": "https://x.com/b"}},
              {"type": "page", "userId": "u-2", "anonymousId": "anon-2", "properties": {"url": "https://x.com/c"}},
              {"type": "page", "userId": 42, "properties": {"url": "https://x.com/d"}},
              {"type": "identify", "userId": "u-2", "anonymousId": "u-2"},
              {"type": "alias", "previousId": "u-2", "userId": "u-2"}
            ]}
            """)
        #expect(batch.events.map(\.contact) == ["anon-2", "anon-2", "u-2", "42"])
        #expect(batch.events.allSatisfy { $0.id == nil && $0.at == received })
        #expect(batch.ignored == [.oneIdentity: 2])
    }

    @Test(
        "I6 timestamps with fractions and offsets",
        arguments: [
            ("2026-11-30T23:47:30.437+00:00", capturedAt),
            ("2026-11-30T23:47:30.437Z", capturedAt),
            ("2026-12-01T01:47:30.437+02:00", capturedAt),
            ("2026-11-30T23:47:30.437123+00:00", capturedAt),  // Python's isoformat(): microseconds
            ("2026-11-30T23:47:30+00:00", capturedAt - 437),  // isoformat() drops a zero fraction
            ("2026-11-30T18:47:30.4-05:00", capturedAt - 37),
        ])
    func timestamps(text: String, expected: Int64) throws {
        let batch = try map(
            #"{"batch": [{"type": "page", "anonymousId": "a", "timestamp": "\#(text)", "#
                + #""context": {"page": {"url": "https://x.com/"}}}]}"#)
        #expect(batch.events.first?.at == expected)
        #expect(batch.events.first?.url == "https://x.com/")
    }

    @Test("I6 a batch's context applies to calls without their own; RudderStack's numeric sessionId is a session")
    func contexts() throws {
        let batch = try map(
            """
            {"context": {"sessionId": 1700000000000, "page": {"url": "https://x.com/shared"}}, "batch": [
              {"type": "page", "anonymousId": "a"},
              {"type": "page", "anonymousId": "a", "context": {"sessionId": "own", "page": {"url": "https://x.com/own"}}},
              {"type": "page", "anonymousId": "a", "properties": {"url": "https://x.com/prop"},
               "context": {"page": {"url": "https://x.com/own"}}}
            ]}
            """)
        #expect(batch.events.map(\.url) == ["https://x.com/shared", "https://x.com/own", "https://x.com/prop"])
        #expect(batch.events.map(\.session) == ["1700000000000", "own", "1700000000000"])
    }

    @Test("I6 item_property names the item; a behaviour type's name maps to itself; track can record a url.hit")
    func trackMapping() throws {
        let custom = SegmentMapping(events: ["Signed Up": .formSubmit], itemProperty: "form_id")
        #expect(custom.type(ofTrack: "Signed Up") == .formSubmit)
        #expect(custom.type(ofTrack: "email.open") == .emailOpen)
        #expect(custom.type(ofTrack: "contact.update") == nil)  // administrative types never come from ingest
        #expect(custom.type(ofTrack: "contact.merge") == nil)
        let batch = try map(
            """
            {"batch": [
              {"type": "track", "userId": "u", "event": "Signed Up", "properties": {"form_id": "trial", "item": "x"}},
              {"type": "track", "userId": "u", "event": "url.hit", "properties": {"url": "https://x.com/docs"}},
              {"type": "track", "userId": "u", "event": "contact.update", "properties": {"item": "x"}}
            ]}
            """, with: custom)
        #expect(batch.events.map(\.item) == ["trial", nil])
        #expect(batch.events.map(\.url) == [nil, "https://x.com/docs"])
        #expect(batch.ignored == [.unmappedEvent: 1])
    }

    @Test("I1 merges from the admin socket are marked as such")
    func adminMerges() throws {
        let batch = try map(
            #"{"batch": [{"type": "alias", "previousId": "a", "userId": "b"}]}"#, viaIngest: false)
        #expect(batch.events == [Event.merge(from: "a", into: "b", at: received, viaIngest: false)])
    }

    @Test func theWriteKeyIsReadFromTheBody() throws {
        #expect(SegmentMapping.writeKey(in: try json(#"{"writeKey": "k", "batch": []}"#)) == "k")
        #expect(SegmentMapping.writeKey(in: try json(#"{"writeKey": null}"#)) == nil)
        #expect(SegmentMapping.writeKey(in: try json(#"[]"#)) == nil)
    }
}
