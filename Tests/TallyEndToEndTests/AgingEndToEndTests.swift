import Foundation
import TallyAPI
import TallyClient
import TallyCore
import Testing

/// D1–D4 through the real daemon on real sockets: time set with `POST /v1/clock`, awards that expire and decay,
/// the triggers they cross, explain and `score --at`, verify, a restart and a rebuild; and the daemon's own clock.
@Suite("Time in the log: expiry and decay, end to end")
struct AgingEndToEndTests {
    static let t: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
    static let day: Int64 = 86_400_000

    static let rules = """
        actions:
          - { id: guide, type: asset.download, delta: 10, expires_after: 60d }
          - id: webinar
            type: form.submit
            delta: 25
            decay: [{ after: 30d, keep: 50 }, { after: 90d, keep: 0 }]
        triggers:
          - { id: hot, min_points: 30, events: [{ id: tag, type: tags.modify, add: [hot] }] }
          - { id: cooling, falls_below: 30, events: [{ id: tag, type: tags.modify, add: [cooling] }] }
        """

    /// Appends a clock event at `at` and returns its sequence number.
    static func clock(_ daemon: Daemon, _ at: Int64) throws -> UInt64 {
        let reply = try daemon.adminRequest("POST", "/v1/clock", json: #"{"at":\#(at)}"#)
        #expect(reply.status == 202, "\(reply.text)")
        return try reply.receipt.lastSeq ?? 0
    }

    static func explain(_ daemon: Daemon, _ contact: String, at: Int64? = nil) throws -> ExplainDocument {
        let query = at.map { "?at=\(Timestamp.format($0))" } ?? ""
        return try daemon.admin().request("GET", "/v1/contacts/\(contact)/explain\(query)").decode(
            ExplainDocument.self)
    }

    @Test(
        "D1 D2 D3 D4 an award expires, another decays in two steps, T8 fires on the decay; explain and score --at include them"
    )
    func expiryAndDecay() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let events = [
            JSON.event("asset.download", contact: "lead", item: "guide", at: Self.t),
            JSON.event("form.submit", contact: "lead", item: "webinar", at: Self.t + 1000),
        ]
        #expect(try daemon.post(events).status == 202)
        let fresh = try #require(try daemon.contact("lead", after: try daemon.health().logHead).document)
        #expect(fresh.points == 35)
        #expect(fresh.tags == ["hot"])

        // Day 29: nothing is due yet.
        var seq = try Self.clock(daemon, Self.t + 29 * Self.day)
        #expect(try daemon.contact("lead", after: seq).document?.points == 35)
        // Day 30 + 1 s: the webinar decays to 50 % of 25 = 12 (−13): 22, and T8 fires on the decay (from 30 or more
        // to less).
        seq = try Self.clock(daemon, Self.t + 30 * Self.day + 1000)
        let decayed = try #require(try daemon.contact("lead", after: seq).document)
        #expect(decayed.points == 22)
        #expect(decayed.tags == ["cooling", "hot"])
        // A clock event behind now changes nothing (D1).
        seq = try Self.clock(daemon, Self.t)
        #expect(try daemon.contact("lead", after: seq).document?.points == 22)
        // Day 90 + 1 s: the guide expired at day 60 (−10) and the webinar's second step keeps 0 % (−12); both are
        // due by this one clock event and apply in due order (D4).
        seq = try Self.clock(daemon, Self.t + 90 * Self.day + 1000)
        #expect(try daemon.contact("lead", after: seq).document?.points == 0)

        let explanation = try Self.explain(daemon, "lead")
        #expect(explanation.entries.map(\.kind) == ["action", "action", "decay", "expiry", "decay"])
        #expect(explanation.entries.map(\.delta) == [10, 25, -13, -10, -12])
        #expect(explanation.points == 0)
        let expiry = explanation.entries[3]
        #expect(expiry.action == "guide")
        #expect(expiry.at == "2026-03-02T00:00:00Z")
        #expect(expiry.reason.contains("the award of 10 at 2026-01-01T00:00:00Z"))
        #expect(explanation.entries[2].reason.contains("keeps 50% = 12"), "\(explanation.entries[2].reason)")
        // score --at counts each change from when it aged (A6).
        #expect(try Self.explain(daemon, "lead", at: Self.t + 30 * Self.day + 999).points == 35)
        #expect(try Self.explain(daemon, "lead", at: Self.t + 30 * Self.day + 1000).points == 22)
        #expect(try Self.explain(daemon, "lead", at: Self.t + 60 * Self.day).points == 12)
        let score = try daemon.run(["score", "lead", "--at", "2026-02-15T00:00:00Z"])
        #expect(score.status == 0)
        #expect(score.output.contains("22"), "\(score.output)")

        let clock = try daemon.admin().request("GET", "/v1/clock").decode(ClockDocument.self)
        #expect(clock.now == Timestamp.format(Self.t + 90 * Self.day + 1000))
        #expect(clock.aging == 0)
        #expect(try daemon.verify().passed)
    }

    @Test("D4 aging survives a restart and a kill -9, and a rebuild gives the same scores and audit (A4, A5)")
    func restartAndRebuild() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        let events = (0..<50).map {
            JSON.event("form.submit", contact: "c\($0 % 5)", item: "webinar", at: Self.t + Int64($0) * 3_600_000)
        }
        #expect(try daemon.post(events).status == 202)
        _ = try Self.clock(daemon, Self.t + 31 * Self.day)
        daemon.crash()
        try daemon.start()
        defer { daemon.stop() }
        let seq = try Self.clock(daemon, Self.t + 60 * Self.day)
        #expect(try daemon.contact("c0", after: seq).document?.points == 12)
        let before = try Self.explain(daemon, "c3")
        let rebuild = try daemon.adminRequest("POST", "/v1/rebuild", json: "{}")
        #expect(rebuild.status == 202, "\(rebuild.text)")
        try AuditEndToEndTests.waitUntil(timeout: 60) {
            try daemon.admin().request("GET", "/v1/rebuild").decode(RebuildStatus.self).rebuild?.phase == .done
        }
        let after = try Self.explain(daemon, "c3")
        #expect(after.points == before.points)
        #expect(after.entries.map(\.kind) == before.entries.map(\.kind))
        #expect(after.entries.map(\.delta) == before.entries.map(\.delta))
        #expect(try daemon.verify().passed)
    }

    @Test("D1 POST /v1/clock refuses a bad time with the field named and appends nothing")
    func badClock() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        for body in [#"{"at":"soon"}"#, #"{"at":true}"#, "[1]", #"{"at":999999999999999999}"#] {
            let reply = try daemon.adminRequest("POST", "/v1/clock", json: body)
            #expect(reply.status == 400, "\(body): \(reply.text)")
            #expect(try reply.error.field == "at", "\(body)")
        }
        #expect(try daemon.health().logHead == 1)  // the rules publication only
        // The ingest socket has no clock.
        let ingest = try daemon.ingest().request("POST", "/v1/clock", body: Array(#"{"at":1}"#.utf8))
        #expect(ingest.status == 404)
    }

    @Test("D1 the daemon appends clock events every clock_interval, and an award expires by them alone")
    func daemonClock() throws {
        let daemon = try Daemon(
            rules: "actions: [{ id: open, type: email.open, delta: 5, expires_after: 1s }]",
            extraConfig: "clock_interval: 100ms")
        try daemon.start()
        defer { daemon.stop() }
        // No `at`: the event happens now, on the daemon's wall clock.
        #expect(try daemon.post([JSON.event("email.open", contact: "w", item: "news")]).status == 202)
        var points: Int64?
        for _ in 0..<200 {  // up to 20 s; the award is due after 1 s and the next tick ages it
            points = try daemon.contact("w", after: try daemon.health().logHead).document?.points
            if points == 0 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(points == 0)
        let clock = try daemon.admin().request("GET", "/v1/clock").decode(ClockDocument.self)
        #expect(clock.now != nil)
        #expect(try Self.explain(daemon, "w").entries.map(\.kind) == ["action", "expiry"])
    }
}
