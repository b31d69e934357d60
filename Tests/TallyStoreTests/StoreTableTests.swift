import TallyCore
import Testing

@testable import TallyStore

/// The tables of both environments through the store's API: a round trip, a garbage record refused as a
/// ``CorruptRecordError`` naming its table, and the environments' format version (`meta` → `format`).
@Suite("Store tables")
struct StoreTableTests {
    static func isCorrupt(_ table: String) -> (any Error) -> Bool {
        { error in (error as? CorruptRecordError)?.table == table }
    }

    @Test("events: a garbage value or key in the log is a corrupt `events` record when read, not a wrong event")
    func corruptEvent() throws {
        let directory = try TemporaryDirectory()
        let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
        _ = try log.append([[Event(type: .emailOpen, contact: "c", at: 1, item: "n")]])
        let events = try log.environment.database("events")
        try log.environment.write { txn in _ = try txn.put(events, SequenceKey.encode(2), [1, 3, 0]) }
        #expect(try log.event(at: 1)?.contact == "c")
        #expect(performing: { _ = try log.event(at: 2) }, throws: Self.isCorrupt("events"))
        #expect(performing: { _ = try log.read(from: 1, limit: 10) }, throws: Self.isCorrupt("events"))
        try log.environment.write { txn in
            _ = try txn.delete(events, SequenceKey.encode(2))
            _ = try txn.put(events, [0, 1], EventCodec.encode(Event(type: .emailOpen, contact: "c", at: 1, item: "n")))
        }
        #expect(performing: { _ = try log.read(from: 0, limit: 10) }, throws: Self.isCorrupt("events"))
    }

    @Test("A3 the rules index lists the rules.published and rebuild events in log order, and nothing else")
    func rulesIndexRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
        let published = Event(type: .rulesPublished, contact: "", at: 1, reason: "file r.yaml", text: "actions: []\n")
        let rebuild = Event(type: .rebuild, contact: "", at: 3, value: 1)
        _ = try log.append([
            [published, Event(type: .emailOpen, contact: "c", at: 2, item: "n")],
            [Event(type: .pointsChange, contact: "c", at: 2, value: 1, operation: .plus), rebuild],
        ])
        let listed = try log.rulesEvents()
        #expect(listed.map(\.seq) == [1, 4])
        #expect(listed.map(\.event) == [published, rebuild])
        let reopened = try EventLog(directory: directory.path, mapSize: 1 << 20)
        #expect(try reopened.rulesEvents().map(\.seq) == [1, 4], "the index is stored, not rebuilt at open")
    }

    @Test("A3 a rules index entry without its event, or with a malformed key, is a corrupt `rules` record")
    func corruptRulesIndex() throws {
        let directory = try TemporaryDirectory()
        let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
        _ = try log.append([[Event(type: .rebuild, contact: "", at: 1, value: 1)]])
        let rules = try log.environment.database("rules")
        try log.environment.write { txn in _ = try txn.put(rules, SequenceKey.encode(9), [EventType.rebuild.rawValue]) }
        #expect(performing: { _ = try log.rulesEvents() }, throws: Self.isCorrupt("rules"))
        try log.environment.write { txn in
            _ = try txn.delete(rules, SequenceKey.encode(9))
            _ = try txn.put(rules, [1, 2, 3], [EventType.rebuild.rawValue])
        }
        #expect(performing: { _ = try log.rulesEvents() }, throws: Self.isCorrupt("rules"))
    }

    @Test("contacts: states round-trip through the table in byte order; a garbage state is a corrupt `contacts` record")
    func contactsTable() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        try store.update { txn in
            try txn.setContact("b", CodecTests.fullState)
            try txn.setContact("a", ContactState(points: 1))
        }
        #expect(try store.contact("b") == CodecTests.fullState)
        #expect(try store.allContacts().map(\.0) == ["a", "b"])
        let contacts = try store.environment.database("contacts")
        try store.environment.write { txn in _ = try txn.put(contacts, Array("c".utf8), [1, 2]) }
        #expect(performing: { _ = try store.contact("c") }, throws: Self.isCorrupt("contacts"))
        #expect(performing: { _ = try store.allContacts() }, throws: Self.isCorrupt("contacts"))
        #expect(
            performing: { _ = try store.read { try $0.contacts(after: nil, limit: 10) } },
            throws: Self.isCorrupt("contacts"))
    }

    @Test("U5 sessions: open hits round-trip by contact and session, ids with any byte; garbage is corrupt `sessions`")
    func sessionsTable() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        let keys = [
            SessionKey(contact: "c", session: "s"), SessionKey(contact: "cs", session: ""),
            SessionKey(contact: "c\u{0}", session: "s\u{0}"), SessionKey(contact: "é", session: "x"),
        ]
        try store.update { txn in
            for (index, key) in keys.enumerated() {
                try txn.setOpenHit(key, OpenHit(at: Int64(index), url: "https://example.com/\(index)"))
            }
        }
        for (index, key) in keys.enumerated() {
            #expect(
                try store.read { try $0.openHit(key) } == OpenHit(at: Int64(index), url: "https://example.com/\(index)")
            )
        }
        #expect(try store.read { try $0.openHit(SessionKey(contact: "c", session: "t")) } == nil)
        let all = try store.allOpenHits()
        #expect(Set(all.keys) == Set(keys))
        let sessions = try store.environment.database("sessions")
        try store.environment.write { txn in
            _ = try txn.put(sessions, OpenHitCodec.key(SessionKey(contact: "z", session: "z")), [7, 7])
        }
        #expect(
            performing: { _ = try store.read { try $0.openHit(SessionKey(contact: "z", session: "z")) } },
            throws: Self.isCorrupt("sessions"))
        #expect(performing: { _ = try store.allOpenHits() }, throws: Self.isCorrupt("sessions"))
    }

    @Test(
        "A1 audit: entries round-trip in log order per contact across batches; the table is the change feed (L2)")
    func auditTable() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        let later = CodecTests.entries.map { entry -> AuditEntry in
            var entry = entry
            entry.seq = 9
            return entry
        }
        var first = TrailBatch()
        first.awards(contact: "c", CodecTests.entries)
        first.awards(contact: "cc", [CodecTests.entries[0]], firstIndex: 3)
        var second = TrailBatch()
        second.awards(contact: "c", later)
        try store.update { txn in try txn.append(first) }
        try store.update { txn in try txn.append(second) }
        #expect(try store.read { try $0.audit(contact: "c") } == CodecTests.entries + later)
        #expect(try store.read { try $0.audit(contact: "cc") } == [CodecTests.entries[0]])
        #expect(try store.read { try $0.audit(contact: "nobody") } == [])
        var feed: [String] = []
        try store.read { txn in
            try txn.forEachChange(after: 0, index: nil) { seq, index, contact, _ in
                feed.append("\(seq).\(index) \(contact)")
                return true
            }
        }
        #expect(feed == ["7.0 c", "7.1 c", "7.2 c", "7.3 cc", "9.0 c", "9.1 c", "9.2 c"])
        #expect(try store.indexDifferences() == [])
        // An append before the contact's last entry is refused.
        #expect(performing: { try store.update { txn in try txn.append(first) } }, throws: { $0 is TrailOrderError })
    }

    @Test(
        "A2 audit: a chain through a missing entry or another contact's is a corrupt `audit` record, not a short trail"
    )
    func brokenAuditChain() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        var batch = TrailBatch()
        batch.awards(contact: "c", CodecTests.entries)
        batch.awards(contact: "d", [CodecTests.entries[0]], firstIndex: 3)
        try store.update { txn in try txn.append(batch) }
        let audit = try store.environment.database("audit")
        let value = AuditCodec.encode(CodecTests.entries[0])
        // The middle entry of "c" rewritten as one of "d": the chain of "c" runs through another contact's entry.
        try store.environment.write { txn in
            let record = AuditCodec.record(contact: "d", previous: nil, entry: value)
            _ = try txn.put(audit, AuditCodec.key(AuditPosition(seq: 7, index: 1)), record)
        }
        #expect(performing: { _ = try store.read { try $0.audit(contact: "c") } }, throws: Self.isCorrupt("audit"))
        #expect(try store.indexDifferences().contains { $0.hasPrefix("audit:") }, "verify names the broken chain")
        try store.environment.write { txn in
            _ = try txn.delete(audit, AuditCodec.key(AuditPosition(seq: 7, index: 1)))
        }
        #expect(performing: { _ = try store.read { try $0.audit(contact: "c") } }, throws: Self.isCorrupt("audit"))
        #expect(try store.read { try $0.audit(contact: "d") }.count == 1, "another contact's chain is not read")
    }

    @Test("I3 I8 history: events chain per contact in log order; a merge makes one chain of both; erasure empties it")
    func historyChains() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        var batch = TrailBatch()
        for (seq, contact) in [(1, "a"), (2, "b"), (3, "a"), (5, "b"), (8, "a")] as [(UInt64, String)] {
            batch.event(contact, seq: seq)
        }
        try store.update { txn in try txn.append(batch) }
        #expect(try store.read { try $0.history("a") } == [1, 3, 8])
        #expect(try store.read { try $0.firstHistory("b") } == 2)
        #expect(try store.indexDifferences() == [])
        try store.update { txn in
            try txn.addHistory("a", seq: 9)
            try txn.addHistory("b", seq: 9)  // a merge both took part in
            try txn.moveHistory(from: "b", into: "a")
        }
        #expect(try store.read { try $0.history("a") } == [1, 2, 3, 5, 8, 9])
        #expect(try store.read { try $0.history("b") } == [])
        #expect(try store.read { try $0.trail("b") } == Trail(), "an empty trail is not stored")
        #expect(try store.indexDifferences() == [])
        #expect(try store.update { txn in try txn.removeHistory("a") } == [1, 2, 3, 5, 8, 9])
        #expect(try store.read { try $0.firstHistory("a") } == nil)
        #expect(try store.indexDifferences() == [])
        let history = try store.environment.database("history")
        #expect(try store.environment.read { txn in try txn.get(history, HistoryCodec.key(1, "a")) } == nil)
    }

    @Test("A5 meta: the checkpoint, the rules cursor, the rebuild seq and the T4 pass round-trip and survive reopening")
    func metaRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let pass = ExistingTriggersPass(seq: 12, at: -1, triggers: ["mql", "hot"], after: "c\u{0}é")
        do {
            let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
            let empty = try store.read { txn in
                (try txn.checkpoint(), try txn.rulesCursor(), try txn.rebuildSeq(), try txn.existingTriggersPass())
            }
            #expect(empty.0 == 0)
            #expect(empty.1 == (0, 0))
            #expect(empty.2 == 0)
            #expect(empty.3 == nil)
            try store.update { txn in
                try txn.setCheckpoint(UInt64.max)
                try txn.setRulesCursor(version: 3, published: 5)
                try txn.setRebuildSeq(1 << 40)
                try txn.setExistingTriggersPass(pass)
            }
        }
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        let stored = try store.read { txn in
            (try txn.checkpoint(), try txn.rulesCursor(), try txn.rebuildSeq(), try txn.existingTriggersPass())
        }
        #expect(stored.0 == UInt64.max)
        #expect(stored.1 == (3, 5))
        #expect(stored.2 == 1 << 40)
        #expect(stored.3 == pass)
        let first = ExistingTriggersPass(seq: 1, at: 2, triggers: [])
        try store.update { txn in try txn.setExistingTriggersPass(first) }
        #expect(try store.read { try $0.existingTriggersPass() } == first)
        try store.update { txn in try txn.setExistingTriggersPass(nil) }
        #expect(try store.read { try $0.existingTriggersPass() } == nil)
    }

    @Test("A5 meta: a malformed checkpoint, rules cursor, rebuild seq or T4 pass is a corrupt `meta` record, never 0")
    func corruptMeta() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        let meta = try store.environment.database("meta")
        for key in ["checkpoint", "rules", "rebuild", "existing"] {
            try store.environment.write { txn in _ = try txn.put(meta, Array(key.utf8), [1, 2, 3]) }
        }
        #expect(performing: { _ = try store.checkpoint() }, throws: Self.isCorrupt("meta"))
        #expect(performing: { _ = try store.read { try $0.rulesCursor() } }, throws: Self.isCorrupt("meta"))
        #expect(performing: { _ = try store.read { try $0.rebuildSeq() } }, throws: Self.isCorrupt("meta"))
        #expect(performing: { _ = try store.read { try $0.existingTriggersPass() } }, throws: Self.isCorrupt("meta"))
    }

    @Test("format: a new environment records its format; a newer or malformed one is refused, not misread")
    func storeFormat() throws {
        let directory = try TemporaryDirectory()
        let environment = try LMDBEnvironment(path: directory.path, mapSize: 1 << 20)
        let meta = try environment.database("meta")
        try StoreFormat.check(environment, meta, supported: 5)
        #expect(try environment.read { try $0.get(meta, StoreFormat.key) } == [5])
        try StoreFormat.check(environment, meta, supported: 5)  // the same format opens again
        #expect {
            try StoreFormat.check(environment, meta, supported: 6) { found in "found \(found)" }
        } throws: { error in
            guard let error = error as? UnsupportedFormatError else { return false }
            return error.found == 5 && error.supported == 6 && "\(error)".hasSuffix("found 5")
        }
        for garbage: [UInt8] in [[], [5, 0]] {
            try environment.write { txn in _ = try txn.put(meta, StoreFormat.key, garbage) }
            #expect(throws: UnsupportedFormatError.self) { try StoreFormat.check(environment, meta, supported: 5) }
        }
    }

    @Test("format: projections newer than this release are refused, naming the release that wrote them")
    func newerProjectionsAreRefused() throws {
        let directory = try TemporaryDirectory()
        do {
            let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
            let meta = try store.environment.database("meta")
            #expect(try store.environment.read { try $0.get(meta, StoreFormat.key) } == [ProjectionStore.format])
            try store.environment.write { txn in _ = try txn.put(meta, StoreFormat.key, [ProjectionStore.format + 1]) }
        }
        #expect {
            _ = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        } throws: { error in
            "\(error)".contains("holds on-disk format \(ProjectionStore.format + 1)")
                && "\(error)".contains("run the Tally release that wrote it")
        }
    }
}
