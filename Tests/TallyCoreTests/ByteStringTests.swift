import TallyCore
import Testing

/// "café" with U+00E9, and with `e` + U+0301: canonically equivalent for Swift's `String`, different bytes.
private let composed = "caf\u{E9}"
private let decomposed = "cafe\u{301}"
private let jan2026: Int64 = 1_767_225_600_000

/// SPEC §1: ids, items, sessions and URLs are byte strings. Swift's `String` compares by canonical equivalence, so
/// every table of the fold keys them by bytes (issue 15: two spellings of one contact merged within a batch).
@Suite("Byte strings: ids compare as bytes in the fold")
struct ByteStringTests {
    @Test("ByteString: equality, hashing and order follow UTF-8 bytes, not canonical equivalence")
    func byteSemantics() {
        #expect(composed == decomposed, "the premise: String merges the two spellings")
        #expect(ByteString(composed) != ByteString(decomposed))
        #expect(Set([ByteString(composed), ByteString(decomposed)]).count == 2)
        #expect(ByteString(composed) == ByteString("caf\u{E9}"))
        // Byte order is a strict total order that agrees with LMDB's keys: "cafe\u{301}" (…65 cc 81) < "café" (…c3 a9).
        #expect(ByteString(decomposed) < ByteString(composed))
        #expect(!(ByteString(composed) < ByteString(decomposed)))
        #expect(
            [ByteString(composed), ByteString(decomposed), "cafe", "caf"].sorted().map { Array($0.string.utf8) }
                == ["caf", "cafe", decomposed, composed].map { Array($0.utf8) })
        #expect(SessionKey(contact: "c", session: composed) != SessionKey(contact: "c", session: decomposed))
        #expect(SessionKey(contact: "a", session: "bc").hashValue != SessionKey(contact: "ab", session: "c").hashValue)
        #expect(ByteString.equal(String(decoding: [0x61, 0x62], as: UTF8.self), "ab"))
    }

    @Test("S1 S3 S6 one batch: canonically equivalent contacts, items and sessions stay apart in the fold")
    func equivalentIdsInOneFold() throws {
        let rules = try RulesParser.parse(
            """
            actions:
              - { id: open, type: email.open, delta: 2, repeatable: true }
              - { id: dl, type: asset.download, delta: 10, items: ["\(composed)"] }
              - { id: stay, type: url.hit, delta: 7, url: "https://x.com/*", time_spent: 1m }
              - { id: accent, type: url.hit, delta: 1, repeatable: true, url: "https://x.com/\(composed)" }
            """)
        let scorer = Scorer(rules: rules)
        var projection = Projection()
        let events = [
            Event(type: .emailOpen, contact: composed, at: jan2026, item: "n"),
            Event(type: .emailOpen, contact: decomposed, at: jan2026, item: "n"),
            // S1: only the listed spelling of the item counts; S3: the once-only ledger is per contact.
            Event(type: .assetDownload, contact: composed, at: jan2026, item: decomposed),
            Event(type: .assetDownload, contact: decomposed, at: jan2026, item: composed),
            Event(type: .assetDownload, contact: decomposed, at: jan2026, item: composed),
            // U5: two sessions whose ids are equivalent spellings: neither closes the other's hit.
            Event(type: .urlHit, contact: "s", at: jan2026, url: "https://x.com/a", session: composed),
            Event(type: .urlHit, contact: "s", at: jan2026 + 120_000, url: "https://x.com/b", session: decomposed),
            // URLs are bytes too: the decomposed URL does not match the composed pattern.
            Event(type: .urlHit, contact: "u", at: jan2026, url: "https://x.com/\(decomposed)"),
            Event(type: .urlHit, contact: "u", at: jan2026, url: "https://x.com/\(composed)"),
        ]
        for event in events { projection.apply(event, scorer: scorer) }
        #expect(projection.contacts.count == 4)
        #expect(projection.contacts[ByteString(composed)]?.points == 2)
        #expect(projection.contacts[ByteString(decomposed)]?.points == 12)
        #expect(projection.contacts["s"]?.points == 0, "no session's hit was closed")
        #expect(projection.openHits.count == 2)
        #expect(projection.contacts["u"]?.points == 1)

        // The same events one per fold (as separate batches read back from the store would be) give the same.
        var separate = Projection()
        for event in events {
            var one = Projection()
            let contact = ByteString(event.contact)
            one.contacts = separate.contacts.filter { $0.key == contact }
            one.openHits = separate.openHits.filter { ByteString($0.key.contact) == contact }
            one.apply(event, scorer: scorer)
            separate.contacts.merge(one.contacts) { $1 }
            separate.openHits.merge(one.openHits) { $1 }
        }
        #expect(separate == projection)
    }

    @Test("A1 the replay's audit trail and side effects are per byte-distinct contact")
    func replayKeepsSpellingsApart() throws {
        let rules = """
            actions:
              - { id: open, type: email.open, delta: 5, repeatable: true }
            triggers:
              - { id: t, min_points: 5, events: [{ id: crm, type: integration.push, integration: crm }] }
            """
        let log = [
            LoggedEvent(seq: 1, event: Event(type: .rulesPublished, contact: "", at: jan2026, text: rules)),
            LoggedEvent(seq: 2, event: Event(type: .emailOpen, contact: composed, at: jan2026, item: "n")),
            LoggedEvent(seq: 3, event: Event(type: .emailOpen, contact: decomposed, at: jan2026, item: "n")),
        ]
        let replay = try LogReplay.replay(log)
        #expect(replay.audit[ByteString(composed)]?.map(\.seq) == [2])
        #expect(replay.audit[ByteString(decomposed)]?.map(\.seq) == [3])
        #expect(replay.sideEffects.count == 2, "one push per contact (T3 once per contact)")
    }
}
