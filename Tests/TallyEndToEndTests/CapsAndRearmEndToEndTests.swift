import Foundation
import TallyAPI
import TallyClient
import Testing

/// C1, C2, T8 and T9 through the real daemon on real sockets, with a real webhook receiver.
@Suite("Caps and downward, re-arming triggers, end to end")
struct CapsAndRearmEndToEndTests {
    static let t: Int64 = 1_767_225_600_000

    static func open(_ contact: String, at: Int64) -> String {
        JSON.event("email.open", contact: contact, item: "news", at: at)
    }

    static func minus(_ daemon: Daemon, _ contact: String, _ value: Int64) throws {
        let reply = try daemon.adminRequest(
            "POST", "/v1/contacts/\(contact)/points", json: #"{"op":"minus","value":\#(value)}"#)
        #expect(reply.status == 202, "\(reply.text)")
    }

    @Test("C1 C2 max_awards: 2 stops at the 2nd award; max_per 1 per 10s: t − D excluded, t included, out of order")
    func capsAtTheirBoundaries() throws {
        let daemon = try Daemon(
            rules: """
                actions:
                  - { id: open, type: email.open, delta: 5, repeatable: true, max_awards: 2 }
                  - { id: click, type: page.hit, delta: 1, repeatable: true, max_per: { count: 1, within: 10s } }
                """)
        try daemon.start()
        defer { daemon.stop() }
        // C1: three opens, two awarded.
        #expect(try daemon.post((0..<3).map { Self.open("c1", at: Self.t + Int64($0)) }).status == 202)
        // C2: t+20s, then late t (awarded: t+20s is after its window), t+9.999s (window holds t: refused),
        // t+10s (t at the excluded start, t+20s after: awarded), t+20s again (t+20s included: refused).
        let hits = [20_000, 0, 9_999, 10_000, 20_000].map {
            JSON.event("page.hit", contact: "c2", item: "p", at: Self.t + Int64($0))
        }
        #expect(try daemon.post(hits).status == 202)
        let capped = try #require(try daemon.contact("c1", after: try daemon.health().logHead).document)
        #expect(capped.points == 10)
        let rated = try #require(try daemon.contact("c2", after: try daemon.health().logHead).document)
        #expect(rated.points == 3)
        #expect(try daemon.verify().passed)
    }

    @Test(
        "T8 falls_below fires when a negative action takes the score from 10 or more to less; T9 rearm fires twice with two outbox keys"
    )
    func fallsBelowAndRearm() throws {
        let scratch = "/tmp/tally-caps-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try WebhookServer(directory: scratch + "/webhook")
        let daemon = try Daemon(
            rules: """
                actions:
                  - { id: open, type: email.open, delta: 10, repeatable: true }
                  - { id: unsubscribe, type: form.submit, delta: -8, repeatable: true }
                triggers:
                  - id: cooling
                    falls_below: 10
                    events: [{ id: cold, type: tags.modify, add: [cold] }]
                  - id: mql
                    min_points: 10
                    rearm: true
                    events: [{ id: crm, type: integration.push, integration: crm }]
                """,
            extraConfig: """
                integrations:
                  crm: { url: "http://127.0.0.1:\(webhook.port)/hook" }
                outbox: { attempts: 3, backoff: 100ms }
                """)
        try daemon.start()
        defer { daemon.stop() }
        // 10 (mql #1), 2 (cooling; mql left), 12 (mql #2), 22 (still reached: nothing).
        #expect(try daemon.post([Self.open("r", at: Self.t)]).status == 202)
        #expect(
            try daemon.post([JSON.event("form.submit", contact: "r", item: "unsub", at: Self.t + 1)]).status == 202)
        let cooled = try #require(try daemon.contact("r", after: try daemon.health().logHead).document)
        #expect(cooled.points == 2)
        #expect(cooled.tags == ["cold"])
        #expect(try daemon.post([Self.open("r", at: Self.t + 2), Self.open("r", at: Self.t + 3)]).status == 202)
        let contact = try #require(try daemon.contact("r", after: try daemon.health().logHead).document)
        #expect(contact.points == 22)
        #expect(contact.triggers == ["cooling/cold", "mql/crm", "mql/crm/2"])
        _ = try TriggerDeliveryTests.waitForEntry(daemon, "r/mql/crm", state: "delivered")
        _ = try TriggerDeliveryTests.waitForEntry(daemon, "r/mql/crm/2", state: "delivered")
        let keys = try daemon.admin().request("GET", "/v1/outbox").decode(OutboxList.self).entries.map(\.key)
        #expect(keys.sorted() == ["r/mql/crm", "r/mql/crm/2"])
        #expect(webhook.acknowledged("r/mql/crm") == 1)
        #expect(webhook.acknowledged("r/mql/crm/2") == 1)
        let second = try #require(webhook.requests.first { $0.header("Idempotency-Key") == "r/mql/crm/2" })
        #expect(second.body.key == "r/mql/crm/2")

        // T8 after a manual minus too: 22 → 9 does not fire cooling again (no rearm, T3), but re-arms mql.
        try Self.minus(daemon, "r", 13)
        let after = try #require(try daemon.contact("r", after: try daemon.health().logHead).document)
        #expect(after.points == 9)
        #expect(after.triggers == ["cooling/cold", "mql/crm", "mql/crm/2"])
        #expect(try daemon.verify().passed)
    }
}
