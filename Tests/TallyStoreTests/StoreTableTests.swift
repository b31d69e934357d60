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
        "A1 audit: entries round-trip through the table in log order per contact; garbage is a corrupt `audit` record")
    func auditTable() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        var batch = AuditBatch()
        let later = CodecTests.entries.map { entry -> AuditEntry in
            var entry = entry
            entry.seq = 9
            return entry
        }
        batch.add(contact: "c", later)
        batch.add(contact: "c", CodecTests.entries)
        batch.add(contact: "cc", [CodecTests.entries[0]])
        try store.update { txn in try txn.addAudit(batch) }
        #expect(try store.read { try $0.audit(contact: "c") } == CodecTests.entries + later)
        #expect(try store.read { try $0.audit(contact: "cc") } == [CodecTests.entries[0]])
        #expect(try store.read { try $0.audit(contact: "nobody") } == [])
        let audit = try store.environment.database("audit")
        try store.environment.write { txn in
            _ = try txn.put(audit, AuditCodec.key(contact: "c", seq: 8, index: 0), [1, 1, 0])
        }
        #expect(performing: { _ = try store.read { try $0.audit(contact: "c") } }, throws: Self.isCorrupt("audit"))
        #expect(try store.read { try $0.audit(contact: "cc") }.count == 1, "another contact's range is not read")
    }

    @Test("A2 audit: a malformed key in a contact's range is a corrupt `audit` record, not the silent end of its trail")
    func corruptAuditKey() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        var batch = AuditBatch()
        batch.add(contact: "c", CodecTests.entries)
        try store.update { txn in try txn.addAudit(batch) }
        let audit = try store.environment.database("audit")
        let value = AuditCodec.encode(CodecTests.entries[0])
        // The contact's prefix and a sequence number, without the index: sorts before the entries of seq 7.
        try store.environment.write { txn in
            _ = try txn.put(audit, AuditCodec.prefix(contact: "c") + SequenceKey.encode(1), value)
        }
        #expect(performing: { _ = try store.read { try $0.audit(contact: "c") } }, throws: Self.isCorrupt("audit"))
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
