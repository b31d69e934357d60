import Foundation
import TallyAPI
import TallyClient
import Testing

/// "café" with U+00E9, and with `e` + U+0301: canonically equivalent for Swift's `String`, different bytes.
private let composed = "caf\u{E9}"
private let decomposed = "cafe\u{301}"

/// Ids, items and sessions are byte strings (SPEC §1), through the real daemon: canonically equivalent spellings are
/// different ids however the events are batched, and one event's awards are all kept however many (A2).
@Suite("Byte-string ids and wide audit batches, end to end")
struct ByteIdentityTests {
    private static let rules = """
        actions:
          - { id: open, type: email.open, delta: 2, repeatable: true }
          - { id: dl, type: asset.download, delta: 10, items: ["\(composed)"] }
        """

    /// One NDJSON line, written by hand so that no JSON encoder normalises the strings.
    private static func line(_ type: String, contact: String, item: String, id: String? = nil) -> String {
        let idField = id.map { #","id":"\#($0)""# } ?? ""
        return #"{"type":"\#(type)","contact":"\#(contact)","item":"\#(item)"\#(idField)}"#
    }

    @Test("S1 S3 S6 canonically equivalent contact ids, items and event ids in ONE body stay apart (issue 15)")
    func equivalentIdsInOneBody() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let reply = try daemon.post([
            Self.line("email.open", contact: composed, item: "n", id: "e-\(composed)"),
            Self.line("email.open", contact: decomposed, item: "n", id: "e-\(decomposed)"),
            // S1: the item filter lists the composed spelling only; S3: the ledger is per contact.
            Self.line("asset.download", contact: composed, item: decomposed),
            Self.line("asset.download", contact: decomposed, item: composed),
            Self.line("asset.download", contact: decomposed, item: composed),
        ])
        #expect(reply.status == 202, "\(reply.text)")
        let receipt = try reply.receipt
        #expect(receipt.accepted == 5, "S6: two different event ids, neither a duplicate")
        #expect(receipt.duplicates == 0)
        let head = try #require(receipt.lastSeq)

        let (composedStatus, composedState) = try daemon.contact(composed, after: head)
        let (decomposedStatus, decomposedState) = try daemon.contact(decomposed, after: head)
        #expect(composedStatus == 200)
        #expect(decomposedStatus == 200)
        #expect(composedState?.points == 2, "one open; the decomposed item is not the listed one")
        #expect(decomposedState?.points == 12, "one open (2) and one once-only download (10)")
        // Compared as bytes: `String ==` would take either spelling for the other.
        #expect(Array((composedState?.contact ?? "").utf8) == Array(composed.utf8))
        #expect(Array((decomposedState?.contact ?? "").utf8) == Array(decomposed.utf8))
        let verify = try daemon.verify()
        #expect(verify.passed, "\(verify.differences)")
    }

    @Test("A2 one event matching 300 actions: 300 points and 300 audit entries that sum to the score (issue 15)")
    func threeHundredAwardsForOneEvent() throws {
        let actions = (0..<300).map { "  - { id: a\($0), type: email.open, delta: 1 }" }
        let daemon = try Daemon(rules: "actions:\n" + actions.joined(separator: "\n"))
        try daemon.start()
        defer { daemon.stop() }
        let reply = try daemon.post([JSON.event("email.open", contact: "wide", item: "n")])
        #expect(reply.status == 202)
        let head = try #require(try reply.receipt.lastSeq)
        #expect(try daemon.contact("wide", after: head).document?.points == 300)

        let explain = try daemon.admin().request("GET", "/v1/contacts/wide/explain?after=\(head)")
            .decode(ExplainDocument.self)
        #expect(explain.entries.count == 300)
        #expect(explain.entriesTotal == 300)
        #expect(explain.entries.map(\.delta).reduce(0, +) == 300)
        #expect(explain.entries.map(\.action) == (0..<300).map { "a\($0)" }, "file order (S5)")
        #expect(explain.byAction.count == 300)
        #expect(explain.byAction.values.reduce(0, +) == 300)
        let verify = try daemon.verify()
        #expect(verify.passed, "\(verify.differences)")
    }
}
