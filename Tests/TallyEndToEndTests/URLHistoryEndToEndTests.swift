import Foundation
import TallyAPI
import TallyClient
import Testing

/// U2 through the real daemon: a rules version that introduces a URL pattern sees the hits made before it.
@Suite("URL history for new patterns, end to end")
struct URLHistoryEndToEndTests {
    @Test("U2 two docs hits, a version with page_hits: 3 for the docs published, one more hit: 7 points; verify")
    func newPatternSeesHistory() throws {
        let daemon = try Daemon(rules: "actions: [{ id: guide, type: asset.download, delta: 1 }]")
        try daemon.start()
        defer { daemon.stop() }
        let hit = { (url: String) in JSON.event("url.hit", contact: "reader", url: url) }
        #expect(try daemon.post([hit("https://x.com/docs/a"), hit("https://x.com/docs/b?ref=1")]).status == 202)
        // Others with history too, so that the backfill has contacts to visit beyond the one the next hit touches.
        #expect(
            try daemon.post((0..<50).map { JSON.event("url.hit", contact: "r\($0)", url: "https://x.com/docs/x") })
                .status == 202)
        let rules = """
            actions:
              - { id: guide, type: asset.download, delta: 1 }
              - { id: docs, type: url.hit, delta: 7, repeatable: true, url: "https://x.com/docs/*", page_hits: 3 }
            """
        let published = try daemon.admin().request(
            "PUT", "/v1/rules", body: Array(rules.utf8), contentType: "application/yaml")
        #expect(published.status == 201, "\(published.text)")
        let reply = try daemon.post([hit("https://x.com/docs/c")])
        let seq = try reply.receipt.lastSeq ?? 0
        let reader = try #require(try daemon.contact("reader", after: seq).document)
        #expect(reader.points == 7)
        let explain = try daemon.admin().request("GET", "/v1/contacts/reader/explain").decode(ExplainDocument.self)
        #expect(explain.entries.last?.reason.contains("page_hits 3 ≥ 3") == true, "\(explain.entries)")
        // Two more hits for a contact the backfill gave one hit: its third hit is awarded.
        _ = try daemon.post([JSON.event("url.hit", contact: "r7", url: "https://x.com/docs/y")])
        let last = try daemon.post([JSON.event("url.hit", contact: "r7", url: "https://x.com/docs/z")])
        #expect(try daemon.contact("r7", after: try last.receipt.lastSeq).document?.points == 7)
        try AuditEndToEndTests.waitUntil(timeout: 30) { try daemon.verify().passed }
    }
}
