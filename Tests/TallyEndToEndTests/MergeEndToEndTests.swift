import Foundation
import TallyAPI
import TallyClient
import TallyCore
import Testing

/// Identity (I1–I5) through the real daemon: anonymous visitors merged into known contacts on either socket, the
/// merged state as the fold of both histories, explain across the merge, chains, cycles, restarts and rebuilds.
@Suite("Identity: merging contacts, end to end")
struct MergeEndToEndTests {
    static let t: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z

    static let rules = """
        actions:
          - { id: pricing, type: url.hit, delta: 5, url: "https://x.com/pricing*", repeatable: true }
          - { id: guide, type: asset.download, delta: 10, repeatable: false }
          - { id: demo, type: form.submit, delta: 20, repeatable: true }
          - { id: three-docs, type: url.hit, delta: 7, url: "https://x.com/docs/*", page_hits: 3 }
        triggers:
          - { id: hot, min_points: 40, events: [{ id: tag, type: tags.modify, add: [hot] }] }
        """

    static func merge(
        _ daemon: Daemon, from: String, into: String, ingest: Bool = false, id: String? = nil
    ) throws -> HTTPReply {
        var object = ["from": from, "into": into]
        if let id { object["id"] = id }
        let body = Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        return try (ingest ? daemon.ingest() : daemon.admin()).request(
            "POST", "/v1/merge", body: body, contentType: "application/json")
    }

    static func explain(_ daemon: Daemon, _ contact: String) throws -> ExplainDocument {
        try daemon.admin().request("GET", "/v1/contacts/\(contact)/explain").decode(ExplainDocument.self)
    }

    static func hit(_ contact: String, _ path: String, _ offset: Int64, session: String? = nil) -> String {
        var object: [String: Any] = [
            "type": "url.hit", "contact": contact, "url": "https://x.com\(path)", "at": t + offset,
        ]
        if let session { object["session"] = session }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    @Test(
        "I1 I2 I3 I4 an anonymous visitor merged on the ingest socket: its points join the contact, reads of the alias answer the contact, later events apply to it"
    )
    func anonymousVisitorBecomesContact() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        // Three anonymous pricing-page loads, then the demo form says who the visitor is.
        let anonymous = (0..<3).map { Self.hit("anon-7f3a", "/pricing", Int64($0) * 60_000, session: "s1") }
        #expect(try daemon.post(anonymous).status == 202)
        #expect(
            try daemon.adminRequest("POST", "/v1/contacts/ada", json: #"{"email":"ada@example.com"}"#).status == 202)
        #expect(
            try daemon.post([JSON.event("form.submit", contact: "ada", item: "demo", at: Self.t + 600_000)]).status
                == 202)
        let merged = try Self.merge(daemon, from: "anon-7f3a", into: "ada", ingest: true)
        #expect(merged.status == 202, "\(merged.text)")
        let seq = try merged.receipt.lastSeq ?? 0

        let ada = try #require(try daemon.contact("ada", after: seq).document)
        #expect(ada.points == 35)  // 3 × 5 + 20
        #expect(ada.aliases == ["anon-7f3a"])
        #expect(ada.email == "ada@example.com")
        // A read of the alias answers the contact it resolves to.
        let alias = try #require(try daemon.contact("anon-7f3a").document)
        #expect(alias.contact == "ada")
        #expect(alias.points == 35)
        // Later events for the alias apply to the contact (the cookie keeps being sent): 40 reaches `hot`.
        let later = try daemon.post([Self.hit("anon-7f3a", "/pricing", 700_000, session: "s1")])
        let after = try #require(try daemon.contact("ada", after: try later.receipt.lastSeq).document)
        #expect(after.points == 40)
        #expect(after.tags == ["hot"])
        // I4: explain lists the anonymous entries marked with their contact, and the sums equal the score.
        let explanation = try Self.explain(daemon, "ada")
        #expect(explanation.entries.reduce(0) { $0 + $1.delta } == 40)
        #expect(explanation.entries.filter { $0.origin == "anon-7f3a" }.count == 4)
        #expect(explanation.entries.filter { $0.origin == nil }.map(\.action) == ["demo"])
        #expect(try daemon.verify().passed)
    }

    @Test(
        "I3 I4 a once-only action done by both counts once: a merge entry makes the sums equal; triggers newly reached fire at the merge"
    )
    func onceOnlyAndTriggerAtMerge() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let events = [
            JSON.event("asset.download", contact: "a", item: "guide", at: Self.t),
            JSON.event("form.submit", contact: "a", item: "demo", at: Self.t + 1),
            JSON.event("asset.download", contact: "b", item: "guide", at: Self.t + 2),
            JSON.event("form.submit", contact: "b", item: "demo", at: Self.t + 3),
        ]
        #expect(try daemon.post(events).status == 202)
        let reply = try Self.merge(daemon, from: "a", into: "b")
        #expect(reply.status == 202, "\(reply.text)")
        let b = try #require(try daemon.contact("b", after: try reply.receipt.lastSeq).document)
        // 10 (guide, once) + 20 + 20 = 50, not 60; 50 ≥ 40 reaches `hot`, which neither had alone (30 each).
        #expect(b.points == 50)
        #expect(b.tags == ["hot"])
        #expect(b.triggers == ["hot/tag"])
        let explanation = try Self.explain(daemon, "b")
        let merge = try #require(explanation.entries.last)
        #expect(merge.kind == "merge")
        #expect(merge.delta == -10)
        #expect(explanation.entries.reduce(0) { $0 + $1.delta } == 50)
        #expect(try daemon.contact("a").document?.contact == "b")
        #expect(try daemon.verify().passed)
    }

    @Test("I3 U3 page-visit state is the union's: two docs pages before the merge and one after make three")
    func pageVisitsAcrossTheMerge() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        #expect(
            try daemon.post([Self.hit("anon", "/docs/a", 0), Self.hit("known", "/docs/b", 1000)]).status == 202)
        #expect(try Self.merge(daemon, from: "anon", into: "known", ingest: true).status == 202)
        let reply = try daemon.post([Self.hit("known", "/docs/c", 2000)])
        let known = try #require(try daemon.contact("known", after: try reply.receipt.lastSeq).document)
        #expect(known.points == 7)
        #expect(try daemon.verify().passed)
    }

    @Test(
        "I2 a chain of three resolves to the last; a merge into itself or around a cycle is refused with 409, a known contact from the ingest socket with 403, appending nothing"
    )
    func chainsCyclesAndRefusals() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let events = ["x", "y", "z"].enumerated().map { index, contact in
            JSON.event("form.submit", contact: contact, item: "demo", at: Self.t + Int64(index))
        }
        #expect(try daemon.post(events).status == 202)
        #expect(try Self.merge(daemon, from: "x", into: "y").status == 202)
        #expect(try Self.merge(daemon, from: "y", into: "z").status == 202)
        let reply = try daemon.post([JSON.event("form.submit", contact: "x", item: "demo", at: Self.t + 10)])
        let z = try #require(try daemon.contact("z", after: try reply.receipt.lastSeq).document)
        #expect(z.points == 80)
        #expect(z.aliases == ["x", "y"])
        #expect(try daemon.contact("x").document?.contact == "z")

        let head = try daemon.health().logHead
        for (from, into) in [("z", "z"), ("z", "x"), ("y", "x")] {
            let refused = try Self.merge(daemon, from: from, into: into)
            #expect(refused.status == 409, "\(from) into \(into): \(refused.text)")
        }
        // `z` is known (the target of merges): the ingest socket may not merge it away.
        #expect(
            try daemon.adminRequest("POST", "/v1/contacts/w", json: #"{"email":"w@example.com"}"#).status == 202)
        let known = try Self.merge(daemon, from: "w", into: "z", ingest: true)
        #expect(known.status == 403, "\(known.text)")
        #expect(try known.error.field == "from")
        #expect(try daemon.health().logHead == head + 1)  // the contact.update only
        // The admin socket merges known contacts.
        #expect(try Self.merge(daemon, from: "w", into: "z").status == 202)
        #expect(try daemon.verify().passed)
    }

    @Test(
        "I3 I5 A5 kill -9 during the merge of a contact with 100,000 events: after the restart the merge is whole, and a rebuild gives the same audit"
    )
    func mergeSurvivesCrashAndRebuild() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        let events = (0..<100_000).map { Self.hit("big", "/pricing/\($0 % 50)", Int64($0) * 1000) }
        for chunk in stride(from: 0, to: events.count, by: 10_000) {
            #expect(try daemon.post(Array(events[chunk..<(chunk + 10_000)])).status == 202)
        }
        // A loaded machine folds 100,000 events in a debug build for longer than a read or a merge waits for the
        // projections (read_after_timeout): poll until they are in.
        let posted = try daemon.health().logHead
        try AuditEndToEndTests.waitUntil(timeout: 120) { try daemon.health().projected >= posted }
        #expect(
            try daemon.post([JSON.event("asset.download", contact: "small", item: "guide", at: Self.t)]).status
                == 202)
        let merged = try Self.merge(daemon, from: "big", into: "small")
        #expect(merged.status == 202, "\(merged.text)")
        daemon.crash()  // the merge folds 100,000 events: the kill lands while it is under way
        try daemon.start()
        defer { daemon.stop() }
        // A debug build folds the merge for longer than a read waits (read_after_timeout): poll until it is in.
        let head = try daemon.health().logHead
        try AuditEndToEndTests.waitUntil(timeout: 120) { try daemon.health().projected >= head }
        let small = try #require(try daemon.contact("small").document)
        #expect(small.points == 500_010)
        #expect(small.aliases == ["big"])
        let before = try Self.explain(daemon, "small")
        #expect(before.entriesTotal == 100_001)
        let rebuild = try daemon.adminRequest("POST", "/v1/rebuild", json: "{}")
        #expect(rebuild.status == 202, "\(rebuild.text)")
        try AuditEndToEndTests.waitUntil(timeout: 120) {
            try daemon.admin().request("GET", "/v1/rebuild").decode(RebuildStatus.self).rebuild?.phase == .done
        }
        let after = try Self.explain(daemon, "small")
        #expect(after.points == before.points)
        #expect(after.entries == before.entries)
        #expect(try daemon.verify().passed)
    }
}
