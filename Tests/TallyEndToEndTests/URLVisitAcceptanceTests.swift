import Foundation
import TallyAPI
import TallyClient
import Testing

/// One U-rule scenario: an action on its own host, a contact's hits, and the score expected after each hit.
struct VisitScenario: Sendable, CustomStringConvertible {
    var rule: String
    var name: String
    /// The action's keys beyond id, type and delta (which is 5), as YAML flow-mapping entries.
    var action: String
    /// (path on the scenario's host, minutes after the base time, session)
    var hits: [(path: String, minutes: Int, session: String?)]
    /// The contact's score after each hit.
    var scores: [Int64]

    var description: String { "\(rule) \(name)" }
}

/// The acceptance table for U1–U6 (and S2/S3 with url.hit), run through the real daemon.
let visitScenarios: [VisitScenario] = [
    .init(
        rule: "U1", name: "exact URL awards, another URL does not",
        action: #"url: "https://HOST/page", repeatable: true"#,
        hits: [("/page", 0, nil), ("/other", 1, nil), ("/page/", 2, nil)], scores: [5, 5, 10]),
    .init(
        rule: "U1", name: "a * pattern matches a deeper path with a query", action: #"url: "https://HOST/help*""#,
        hits: [("/help/a?utm=1", 0, nil)], scores: [5]),
    .init(
        rule: "U1", name: "case differs and still matches", action: #"url: "https://HOST/Page""#,
        hits: [("/PAGE", 0, nil)], scores: [5]),
    .init(
        rule: "U3", name: "page_hits 3 non-repeatable: hit 3 awards, hits 4+ nothing",
        action: #"url: "https://HOST/p*", page_hits: 3"#,
        hits: [("/p1", 0, nil), ("/p2", 1, nil), ("/p3", 2, nil), ("/p4", 3, nil), ("/p5", 4, nil)],
        scores: [0, 0, 5, 5, 5]),
    .init(
        rule: "U3", name: "page_hits 3 repeatable: awards on 3, 4, 5",
        action: #"url: "https://HOST/p*", page_hits: 3, repeatable: true"#,
        hits: [("/p1", 0, nil), ("/p2", 1, nil), ("/p3", 2, nil), ("/p4", 3, nil), ("/p5", 4, nil)],
        scores: [0, 0, 5, 10, 15]),
    .init(
        rule: "U4", name: "returns_within 4h, earlier matching hit 3h before: award; first hit: none",
        action: #"url: "https://HOST/page", returns_within: 4h"#,
        hits: [("/page", 0, nil), ("/page", 180, nil)], scores: [0, 5]),
    .init(
        rule: "U4", name: "returns_within 4h, earlier matching hit 5h before: none",
        action: #"url: "https://HOST/page", returns_within: 4h"#,
        hits: [("/page", 0, nil), ("/page", 300, nil)], scores: [0, 0]),
    .init(
        rule: "U4", name: "returns_within: an earlier hit on a non-matching URL does not count",
        action: #"url: "https://HOST/page", returns_within: 4h"#,
        hits: [("/other", 0, nil), ("/page", 60, nil)], scores: [0, 0]),
    .init(
        rule: "U4", name: "returns_after 1d with the earlier matching hit 2d before: award",
        action: #"url: "https://HOST/page", returns_after: 1d"#,
        hits: [("/page", 0, nil), ("/page", 2 * 1440, nil)], scores: [0, 5]),
    .init(
        rule: "U4", name: "returns_after 1d with the earlier matching hit 2h before: none",
        action: #"url: "https://HOST/page", returns_after: 1d"#,
        hits: [("/page", 0, nil), ("/page", 120, nil)], scores: [0, 0]),
    .init(
        rule: "U5", name: "time_spent 5m: 3m + 3m in one session, awarded on the closing hit to another URL",
        action: #"url: "https://HOST/page*", time_spent: 5m"#,
        hits: [("/page", 0, "s"), ("/page-2", 3, "s"), ("/other", 6, "s")], scores: [0, 0, 5]),
    .init(
        rule: "U5", name: "time_spent 5m: the same hits without a session: none",
        action: #"url: "https://HOST/page*", time_spent: 5m"#,
        hits: [("/page", 0, nil), ("/page-2", 3, nil), ("/other", 6, nil)], scores: [0, 0, 0]),
    .init(
        rule: "U5", name: "a gap above session_timeout is capped at 30m: time_spent 31m not reached",
        action: #"url: "https://HOST/page", time_spent: 31m"#,
        hits: [("/page", 0, "s"), ("/other", 120, "s")], scores: [0, 0]),
    .init(
        rule: "U5", name: "a gap above session_timeout is capped at 30m: time_spent 30m reached",
        action: #"url: "https://HOST/page", time_spent: 30m"#,
        hits: [("/page", 0, "s"), ("/other", 120, "s")], scores: [0, 5]),
    .init(
        rule: "U5", name: "another session does not close the open hit",
        action: #"url: "https://HOST/page", time_spent: 2m"#,
        hits: [("/page", 0, "s1"), ("/other", 5, "s2"), ("/other", 6, "s1")], scores: [0, 0, 5]),
    .init(
        rule: "U6", name: "all conditions together hold at one evaluation",
        action: #"url: "https://HOST/page", page_hits: 2, returns_within: 1h, time_spent: 5m"#,
        hits: [("/page", 0, "s"), ("/page", 10, "s")], scores: [0, 5]),
    .init(
        rule: "U6", name: "a closing hit that does not match does not satisfy returns_within",
        action: #"url: "https://HOST/page", returns_within: 1h, time_spent: 1m"#,
        hits: [("/page", 0, "s"), ("/page", 2, "s"), ("/other", 4, "s")], scores: [0, 5, 5]),
    .init(
        rule: "S2", name: "a publish window excludes an old event, judged on the event's at",
        action: #"url: "https://HOST/page", repeatable: true, publish_up: 2026-01-02T00:00:00Z"#,
        hits: [("/page", 0, nil), ("/page", 2 * 1440, nil)], scores: [0, 5]),
]

@Suite("URL visits U1–U6, through the real daemon")
struct URLVisitAcceptanceTests {
    /// 2026-01-01T00:00:00Z.
    static let base: Int64 = 1_767_225_600_000

    static func host(_ index: Int) -> String { "s\(index).test" }

    static var rules: String {
        var text = "actions:\n"
        for (index, scenario) in visitScenarios.enumerated() {
            let action = scenario.action.replacingOccurrences(of: "HOST", with: host(index))
            text += "  - { id: u-\(index), type: url.hit, delta: 5, \(action) }\n"
        }
        return text
    }

    static func line(_ index: Int, _ hit: (path: String, minutes: Int, session: String?)) -> String {
        var object: [String: Any] = [
            "type": "url.hit", "contact": "visitor-\(index)", "url": "https://\(host(index))\(hit.path)",
            "at": base + Int64(hit.minutes) * 60_000,
        ]
        if let session = hit.session { object["session"] = session }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func score(_ daemon: Daemon, _ index: Int, after: UInt64) throws -> Int64 {
        let (status, document) = try daemon.contact("visitor-\(index)", after: after)
        return status == 200 ? try #require(document).points : -999
    }

    @Test("each scenario posted hit by hit gives the expected score after every hit", arguments: visitScenarios.indices)
    func hitByHit(index: Int) throws {
        let scenario = visitScenarios[index]
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        var observed: [Int64] = []
        for hit in scenario.hits {
            let reply = try daemon.post([Self.line(index, hit)])
            #expect(reply.status == 202, "\(reply.text)")
            let seq = try #require(try reply.receipt.lastSeq)
            observed.append(try Self.score(daemon, index, after: seq))
        }
        #expect(observed == scenario.scores, "\(scenario)")
    }

    @Test("all scenarios replayed out of one NDJSON body give the same final scores")
    func oneNDJSONBody() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        var lines: [String] = []
        for (index, scenario) in visitScenarios.enumerated() {
            lines += scenario.hits.map { Self.line(index, $0) }
        }
        let reply = try daemon.post(lines)
        #expect(reply.status == 202)
        let seq = try #require(try reply.receipt.lastSeq)
        for (index, scenario) in visitScenarios.enumerated() {
            #expect(try Self.score(daemon, index, after: seq) == scenario.scores.last, "\(scenario)")
        }
    }

    @Test("the tracking pixel records a url.hit from query or cookies and always answers a transparent GIF")
    func pixel() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let client = daemon.ingest()
        let url = "https%3A%2F%2F\(Self.host(0))%2Fpage"
        let good = try client.request("GET", "/v1/pixel.gif?contact=visitor-0&url=\(url)&id=px-1")
        #expect(good.status == 200)
        #expect(good.headers["content-type"] == "image/gif")
        #expect(good.headers["cache-control"]?.contains("no-store") == true)
        #expect(Array(good.body.prefix(6)) == Array("GIF89a".utf8))
        let cookie = try client.request(
            "GET", "/v1/pixel.gif?url=\(url)", headers: ["Cookie": "a=b; tally_contact=visitor-0; tally_session=s"])
        #expect(cookie.status == 200)
        let retry = try client.request("GET", "/v1/pixel.gif?contact=visitor-0&url=\(url)&id=px-1")
        #expect(retry.status == 200)
        #expect(try daemon.health().logHead == 3)
        #expect(try Self.score(daemon, 0, after: 3) == 10)

        for bad in ["/v1/pixel.gif", "/v1/pixel.gif?contact=x&url=not-absolute", "/v1/pixel.gif?contact=x"] {
            let reply = try client.request("GET", bad)
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"] == "image/gif")
        }
        #expect(try daemon.health().logHead == 3)
        #expect(daemon.log.contains("pixel hit not recorded"))
        // I7: a hit with neither a contact nor a tally_anon cookie is an anonymous visitor's, named by the cookie
        // the answer sets; the next hit with it is the same visitor's.
        let anonymous = try client.request("GET", "/v1/pixel.gif?url=\(url)")
        let setCookie = try #require(anonymous.headers["set-cookie"])
        let pair = try #require(setCookie.split(separator: ";").first.map(String.init))
        #expect(pair.hasPrefix("tally_anon=anon-"))
        let again = try client.request("GET", "/v1/pixel.gif?url=\(url)", headers: ["Cookie": pair])
        #expect(again.headers["set-cookie"] == nil)
        let visitor = String(pair.dropFirst("tally_anon=".count))
        #expect(try daemon.contact(visitor, after: try daemon.health().logHead).document?.points == 10)
    }
}
