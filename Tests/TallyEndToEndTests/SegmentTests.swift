import Foundation
import TallyAPI
import TallyClient
import TallyCore
import TallyStore
import Testing

/// The `segment:` section of the daemons of these tests.
let segmentConfig = """
    segment:
      events: { "Whitepaper Downloaded": asset.download, "Demo Requested": form.submit }
    """

/// A batch shaped as analytics.js sends it (captured fields: `null` ids, `context`, `integrations`, `sentAt`,
/// `writeKey`, fractional offsets in `timestamp`).
let analyticsJSBatch = """
    {"batch": [
      {"type": "page", "userId": null, "anonymousId": "anon-7", "messageId": "ajs-1",
       "timestamp": "2026-11-30T23:47:30.437+00:00", "name": "Pricing",
       "properties": {"path": "/pricing", "url": "https://x.com/pricing", "title": "Pricing"},
       "context": {"sessionId": "sess-1", "page": {"url": "https://x.com/pricing"},
                   "library": {"name": "analytics.js", "version": "next-1.70.0"}, "userAgent": "Mozilla/5.0"},
       "integrations": {}},
      {"type": "track", "userId": null, "anonymousId": "anon-7", "messageId": "ajs-2",
       "timestamp": "2026-11-30T23:48:02.100+00:00", "event": "Whitepaper Downloaded",
       "properties": {"item": "guide"}, "context": {"sessionId": "sess-1"}},
      {"type": "track", "userId": null, "anonymousId": "anon-7", "messageId": "ajs-3",
       "timestamp": "2026-11-30T23:48:05.000+00:00", "event": "Button Clicked", "properties": {"label": "Buy"}},
      {"type": "track", "userId": "u-7", "anonymousId": "anon-7", "messageId": "ajs-4",
       "timestamp": "2026-11-30T23:49:00.000+00:00", "event": "Demo Requested", "properties": {"item": "demo"}}
    ], "sentAt": "2026-11-30T23:49:01.002Z", "writeKey": "wk_1"}
    """

/// gzip of `bytes`, by the system's `gzip` (what rudder-sdk-python's GzipFile writes).
func gzipped(_ bytes: [UInt8]) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable(["gzip"]) ?? "/bin/gzip")
    process.arguments = ["-c"]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    let writer = Thread {
        input.fileHandleForWriting.write(Data(bytes))
        try? input.fileHandleForWriting.close()
    }
    writer.start()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    waitForExit(process, timeout: 30)
    return Array(data)
}

/// The `contact.merge` events in a stopped daemon's log: (from, into, via the ingest socket, id).
func loggedMerges(_ daemon: Daemon) throws -> [(from: String, into: String, viaIngest: Bool, id: String?)] {
    let log = try EventLog(directory: daemon.dataDirectory + "/log", mapSize: 1 << 20)
    return try log.read(from: 1, limit: 100_000).map(\.event).filter(\.type.isMerge).map {
        ($0.contact, $0.mergeTarget ?? "", $0.value == 1, $0.id)
    }
}

@Suite("I6 Segment-compatible ingest, end to end")
struct SegmentTests {
    func post(
        _ daemon: Daemon, _ path: String, _ body: String, headers: [String: String] = [:], admin: Bool = false
    ) throws -> HTTPReply {
        try (admin ? daemon.admin() : daemon.ingest()).request(
            "POST", path, body: Array(body.utf8), contentType: "application/json", headers: headers)
    }

    @Test("I6 S6 an analytics.js batch is scored; a retry by messageId appends nothing; unmapped events are counted")
    func aBatchIsScoredAndRetriesAreDuplicates() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: segmentConfig)
        try daemon.start()
        defer { daemon.stop() }

        let reply = try post(daemon, "/v1/batch", analyticsJSBatch)
        #expect(reply.status == 200, "\(reply.text)")
        let receipt = try reply.decode(SegmentReceipt.self)
        #expect(receipt.success && receipt.accepted == 4 && receipt.duplicates == 0 && receipt.ignored == 1)
        #expect(receipt.firstSeq == 2 && receipt.lastSeq == 4)  // after the rules publication
        // page (pricing, 5) and the mapped download (10) under the anonymous id; the demo under the user id.
        #expect(try daemon.contact("anon-7", after: 4).document?.points == 15)
        #expect(try daemon.contact("u-7").document?.groups["product"] == 25)

        // The client retries the whole batch (its answer was lost): nothing is appended again (S6).
        let retry = try post(daemon, "/v1/batch", analyticsJSBatch).decode(SegmentReceipt.self)
        #expect(retry.accepted == 1 && retry.duplicates == 3 && retry.ignored == 1)
        #expect(try daemon.health().logHead == 4)
        #expect(try daemon.contact("anon-7", after: 4).document?.points == 15)

        // One call on its own route; the call's type may be left out.
        let page = try post(
            daemon, "/v1/page", #"{"anonymousId": "anon-8", "properties": {"url": "https://x.com/pricing/eu"}}"#)
        #expect(page.status == 200, "\(page.text)")
        let pageReceipt = try page.decode(SegmentReceipt.self)
        #expect(pageReceipt.accepted == 1 && pageReceipt.lastSeq == 5)
        #expect(try daemon.contact("anon-8", after: 5).document?.points == 5)

        let metrics = try daemon.admin().request("GET", "/metrics").text
        #expect(metrics.contains(#"tally_segment_calls_ignored_total{reason="unmapped_event"} 2"#), "\(metrics)")
    }

    @Test("I6 a bad call rejects the whole request with 400 naming the call and field, and appends nothing")
    func aBadCallRejectsTheRequest() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: segmentConfig)
        try daemon.start()
        defer { daemon.stop() }
        let body = """
            {"batch": [
              {"type": "page", "anonymousId": "a", "properties": {"url": "https://x.com/pricing"}},
              {"type": "page", "anonymousId": "a", "properties": {"url": "/pricing"}}
            ]}
            """
        let reply = try post(daemon, "/v1/batch", body)
        #expect(reply.status == 400)
        #expect(try reply.error.field == "batch[1].properties.url")
        #expect(try reply.error.message.hasPrefix("batch[1].properties.url: must be an absolute URL"))
        let track = try post(daemon, "/v1/track", #"{"userId": "u", "event": "Demo Requested"}"#)
        #expect(track.status == 400)
        #expect(try track.error.field == "properties.item")
        #expect(try post(daemon, "/v1/batch", "{not json").status == 400)
        #expect(try daemon.health().logHead == 1, "only the rules publication")
    }

    @Test("I6 gzip bodies are inflated; the body limit holds for the inflated size")
    func gzipBodies() throws {
        let daemon = try Daemon(
            rules: endToEndRules, extraConfig: segmentConfig + "\nlimits: { max_body: 64KiB }")
        try daemon.start()
        defer { daemon.stop() }
        let gzip = ["Content-Encoding": "gzip"]
        let compressed = try gzipped(Array(analyticsJSBatch.utf8))
        let reply = try daemon.ingest().request(
            "POST", "/v1/batch", body: compressed, contentType: "application/json", headers: gzip)
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try reply.decode(SegmentReceipt.self).accepted == 4)
        #expect(try daemon.contact("anon-7", after: 4).document?.points == 15)

        // 1 MiB of JSON whitespace compresses to about 1 KiB: refused once inflated past the 64 KiB limit.
        let padded = #"{"batch": ["# + String(repeating: " ", count: 1 << 20) + "]}"
        let bomb = try gzipped(Array(padded.utf8))
        #expect(bomb.count < 64 << 10)
        let tooLarge = try daemon.ingest().request(
            "POST", "/v1/batch", body: bomb, contentType: "application/json", headers: gzip)
        #expect(tooLarge.status == 413, "\(tooLarge.text)")
        let truncated = try daemon.ingest().request(
            "POST", "/v1/batch", body: Array(compressed.prefix(compressed.count / 2)), contentType: "application/json",
            headers: gzip)
        #expect(truncated.status == 400, "\(truncated.text)")
        let brotli = try post(daemon, "/v1/batch", analyticsJSBatch, headers: ["Content-Encoding": "br"])
        #expect(brotli.status == 415)
        #expect(try daemon.health().logHead == 4)
    }

    @Test("I6 a configured write key is required as the Basic-auth user name or the body's writeKey; 401 otherwise")
    func writeKey() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: segmentConfig + "\n  write_key: wk_live_1")
        try daemon.start()
        defer { daemon.stop() }
        let call = #"{"anonymousId": "a", "properties": {"url": "https://x.com/pricing"}}"#
        let missing = try post(daemon, "/v1/page", call)
        #expect(missing.status == 401)
        #expect(missing.headers["www-authenticate"] == #"Basic realm="tally""#)
        let basic = "Basic " + Data("wk_live_1:".utf8).base64EncodedString()
        #expect(try post(daemon, "/v1/page", call, headers: ["Authorization": basic]).status == 200)
        let wrong = "Basic " + Data("wk_live_2:".utf8).base64EncodedString()
        #expect(try post(daemon, "/v1/page", call, headers: ["Authorization": wrong]).status == 401)
        let inBody = #"{"writeKey": "wk_live_1", "batch": [\#(call)]}"#.replacingOccurrences(
            of: #"{"anonymousId""#, with: #"{"type": "page", "anonymousId""#)
        #expect(try post(daemon, "/v1/batch", inBody).status == 200)
        #expect(try daemon.health().logHead == 3)
    }

    @Test("I6 analytics.js's own routes: /v1/b when batching, /v1/p, /v1/t … otherwise, as text/plain")
    func analyticsJSRoutes() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: segmentConfig + "\n  write_key: wk_js")
        try daemon.start()
        defer { daemon.stop() }
        func post(_ path: String, _ body: String) throws -> HTTPReply {
            try daemon.ingest().request("POST", path, body: Array(body.utf8), contentType: "text/plain")
        }
        let batched = try post("/v1/b", analyticsJSBatch.replacingOccurrences(of: "wk_1", with: "wk_js"))
        #expect(batched.status == 200, "\(batched.text)")
        #expect(try batched.decode(SegmentReceipt.self).accepted == 4)
        let page = try post(
            "/v1/p",
            #"{"type": "page", "anonymousId": "anon-p", "properties": {"url": "https://x.com/pricing"}, "#
                + #""writeKey": "wk_js", "sentAt": "2026-11-30T23:49:01.002Z", "context": {}}"#)
        #expect(page.status == 200, "\(page.text)")
        let track = try post(
            "/v1/t",
            #"{"type": "track", "anonymousId": "anon-p", "event": "Whitepaper Downloaded", "#
                + #""properties": {"item": "guide"}, "writeKey": "wk_js"}"#)
        #expect(track.status == 200, "\(track.text)")
        let last = try #require(try track.decode(SegmentReceipt.self).lastSeq)
        #expect(try daemon.contact("anon-p", after: last).document?.points == 15)
        #expect(try post("/v1/i", #"{"type": "identify", "userId": "u", "writeKey": "wk_js"}"#).status == 200)
        #expect(try post("/v1/p", #"{"type": "page", "anonymousId": "a", "writeKey": "nope"}"#).status == 401)
    }

    @Test("I1 I2 I6 identify with two ids and alias append merges, marked as the ingest socket's or the admin's")
    func identifyAndAliasAppendMerges() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: segmentConfig)
        try daemon.start()
        let body = """
            {"batch": [
              {"type": "identify", "userId": "u-1", "anonymousId": "anon-1", "messageId": "id-1",
               "traits": {"email": "ada@example.com"}},
              {"type": "identify", "userId": "u-1", "anonymousId": null, "messageId": "id-2"},
              {"type": "alias", "previousId": "old-1", "userId": "u-1", "messageId": "al-1"}
            ]}
            """
        let reply = try post(daemon, "/v1/batch", body)
        #expect(reply.status == 200, "\(reply.text)")
        let receipt = try reply.decode(SegmentReceipt.self)
        #expect(receipt.accepted == 3 && receipt.ignored == 1 && receipt.duplicates == 0)
        #expect(try post(daemon, "/v1/batch", body).decode(SegmentReceipt.self).duplicates == 2)  // S6
        let admin = try post(daemon, "/v1/alias", #"{"previousId": "x-1", "userId": "y-1"}"#, admin: true)
        #expect(admin.status == 200, "\(admin.text)")
        daemon.stop()
        let merges = try loggedMerges(daemon)
        #expect(merges.map(\.from) == ["anon-1", "old-1", "x-1"])
        #expect(merges.map(\.into) == ["u-1", "u-1", "y-1"])
        #expect(merges.map(\.viaIngest) == [true, true, false])
        #expect(merges.map(\.id) == ["id-1", "al-1", nil])
    }

    @Test(
        "I3 I6 an anonymous visitor's points join the known contact at identify; an identify sent again changes nothing"
    )
    func identifyJoinsTheAnonymousHistory() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: segmentConfig)
        try daemon.start()
        defer { daemon.stop() }
        let reply = try post(
            daemon, "/v1/batch",
            """
            {"batch": [
              {"type": "page", "anonymousId": "anon-9", "properties": {"url": "https://x.com/pricing"}},
              {"type": "page", "anonymousId": "anon-9", "properties": {"url": "https://x.com/pricing"}},
              {"type": "identify", "userId": "ada", "anonymousId": "anon-9"},
              {"type": "track", "userId": "ada", "event": "Whitepaper Downloaded", "properties": {"item": "guide"}}
            ]}
            """)
        #expect(reply.status == 200, "\(reply.text)")
        let last = try #require(try reply.decode(SegmentReceipt.self).lastSeq)
        #expect(try daemon.contact("ada", after: last).document?.points == 5 + 5 + 10)
        // The next page load identifies again (a new messageId): the merge is made already, so it is left out and
        // the batch's other calls still count (I2).
        let again = try post(
            daemon, "/v1/batch",
            """
            {"batch": [
              {"type": "identify", "userId": "ada", "anonymousId": "anon-9"},
              {"type": "page", "anonymousId": "anon-9", "properties": {"url": "https://x.com/pricing"}}
            ]}
            """)
        #expect(again.status == 200, "\(again.text)")
        let next = try #require(try again.decode(SegmentReceipt.self).lastSeq)
        let ada = try #require(try daemon.contact("ada", after: next).document)
        #expect(ada.points == 5 + 5 + 10 + 5)
        #expect(ada.aliases == ["anon-9"])
    }
}
