import Foundation
import TallyAPI
import TallyClient
import Testing

/// `GET /metrics` (issue: operating Tally), checked with Prometheus' own Python parser.
@Suite("Metrics, end to end")
struct MetricsTests {
    /// Parses Prometheus text with `prometheus_client` and returns every sample as `name{labels}` → value.
    static func parse(_ text: String) throws -> [String: Double] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            samples = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    samples[f"{s.name}{{{labels}}}"] = s.value
            print(json.dumps(samples))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ClientError("prometheus_client refused /metrics: \(problem)")
        }
        let object = (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    static func scrape(_ daemon: Daemon) throws -> [String: Double] {
        let reply = try daemon.admin().request("GET", "/metrics")
        #expect(reply.status == 200)
        #expect(reply.headers["content-type"]?.hasPrefix("text/plain") == true)
        return try parse(reply.text)
    }

    @Test("/metrics parses as Prometheus text and its counters move as events are posted")
    func countersMove() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        defer { daemon.stop() }
        let before = try Self.scrape(daemon)
        let lines = (0..<25).map { JSON.event("email.open", contact: "m-\($0 % 3)", item: "n", id: "m-\($0)") }
        let reply = try daemon.post(lines)
        #expect(try daemon.post(Array(lines.prefix(5))).status == 202)  // five duplicates
        #expect(try daemon.post(["{\"type\":\"nope\",\"contact\":\"x\"}"]).status == 400)
        #expect(try daemon.ingest().request("GET", "/v1/no-such-route").status == 404)
        #expect(try daemon.admin().request("DELETE", "/v1/rules").status == 404)  // a known path, a wrong method
        let seq = try #require(try reply.receipt.lastSeq)
        _ = try daemon.contact("m-0", after: seq)
        let after = try Self.scrape(daemon)
        func delta(_ key: String) -> Double { (after[key] ?? 0) - (before[key] ?? 0) }
        #expect(delta("tally_events_accepted_total{type=email.open}") == 25)
        #expect(delta("tally_events_duplicated_total{type=email.open}") == 5)
        #expect(delta("tally_events_rejected_total{reason=invalid}") == 1)
        #expect(delta("tally_http_requests_total{route=/v1/events,socket=ingest,status=202}") == 2)
        #expect(delta("tally_http_requests_total{route=/v1/events,socket=ingest,status=400}") == 1)
        #expect(delta("tally_http_requests_total{route=NotFound,socket=ingest,status=404}") == 1)
        #expect(delta("tally_http_requests_total{route=NotFound,socket=admin,status=404}") == 1)
        #expect((after["tally_commit_duration_seconds_count{}"] ?? 0) >= 2)
        #expect((after["tally_commit_batch_events_bucket{le=+Inf}"] ?? 0) >= 2)
        #expect(after["tally_log_head{}"] == Double(seq))
        #expect(after["tally_projected{}"] == Double(seq))
        #expect(after["tally_projector_lag_events{}"] == 0)
        #expect(delta("tally_fold_events_total{}") >= 25)
        #expect((after["tally_lmdb_map_size_bytes{env=log}"] ?? 0) > 0)
        #expect((after["tally_lmdb_used_bytes{env=projections}"] ?? 0) > 0)
        #expect(after["tally_rebuild_running{}"] == 0)
    }

    @Test("/metrics on admin_http labels its requests socket=admin_http")
    func adminHTTPLabel() throws {
        let port = freeLoopbackPort()
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "admin_http: 127.0.0.1:\(port)")
        try daemon.start()
        defer { daemon.stop() }
        func scrape() throws -> String {
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-sf", "http://127.0.0.1:\(port)/metrics"]
            let output = Pipe()
            curl.standardOutput = output
            try curl.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            curl.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        _ = try scrape()
        let samples = try Self.parse(try scrape())
        #expect(samples["tally_http_requests_total{route=/metrics,socket=admin_http,status=200}"] == 1)
        #expect(samples["tally_http_requests_total{route=/metrics,socket=admin,status=200}"] == nil)
    }
}
