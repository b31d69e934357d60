import TallyCore
import Testing

@testable import TallyStore

@Suite("Projection store")
struct ProjectionStoreTests {
    @Test("A5 contact states and the checkpoint commit together, and an aborted update changes neither")
    func stateAndCheckpointAreAtomic() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        #expect(try store.checkpoint() == 0)
        try store.update { txn in
            try txn.setContact("c-1", ContactState(points: 5))
            try txn.setCheckpoint(10)
        }
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try store.update { txn in
                try txn.setContact("c-1", ContactState(points: 99))
                try txn.setCheckpoint(20)
                throw Abort()
            }
        }
        #expect(try store.checkpoint() == 10)
        #expect(try store.contact("c-1") == ContactState(points: 5))
        #expect(try store.contact("c-2") == nil)
    }

    /// Two stores with the same outbox folds, one of them given `extra` outcome events.
    static func outboxes(extra: [Event]) throws -> (ProjectionStore, ProjectionStore, [TemporaryDirectory]) {
        let directories = [try TemporaryDirectory(), try TemporaryDirectory()]
        let stores = try directories.map { try ProjectionStore(directory: $0.path, mapSize: 1 << 20) }
        let effect = SideEffect(contact: "c", trigger: "mql", event: "crm", kind: .integrationPush(integration: "crm"))
        for (index, store) in stores.enumerated() {
            try store.update { txn in
                try txn.addOutboxEntry(try #require(OutboxEntry(effect, firedSeq: 3)))
                try txn.applyDeliveryOutcome(
                    Event(type: .outboxAttemptFailed, contact: "c", at: 10, item: "c/mql/crm", reason: "503", value: 20)
                )
                for event in index == 1 ? extra : [] { try txn.applyDeliveryOutcome(event) }
                try txn.setCheckpoint(5)
            }
        }
        return (stores[0], stores[1], directories)
    }

    @Test("T7 A5 verify compares the outbox for equality: a delivery state the log does not hold is a difference")
    func outboxEquality() throws {
        let (live, fresh, directories) = try Self.outboxes(extra: [])
        #expect(try live.differences(from: fresh, checkpoint: 5) == [])
        let entry = try live.read { try $0.outboxEntry("c/mql/crm") }
        #expect(entry?.state == .pending)
        #expect(entry?.attempts == 1)
        #expect(entry?.dueAt == 20)
        #expect(try live.read { try $0.dueOutboxKeys(now: 20, limit: 10) } == ["c/mql/crm"])
        #expect(try live.read { try $0.dueOutboxKeys(now: 19, limit: 10) } == [])
        #expect(try live.read { try $0.nextDueAt() } == 20)
        // Issue 16: the delivery's timer looks only past what is due now.
        #expect(try live.read { try $0.nextDueAt(after: 19) } == 20)
        #expect(try live.read { try $0.nextDueAt(after: 20) } == nil)
        #expect(try live.read { try $0.nextDueAt(after: -5) } == 20)
        _ = directories

        let delivered = Event(type: .outboxDelivered, contact: "c", at: 30, item: "c/mql/crm")
        let (other, expected, more) = try Self.outboxes(extra: [delivered])
        let differences = try #require(try other.differences(from: expected, checkpoint: 5))
        #expect(differences.contains("outbox: c/mql/crm differs from the replay"), "\(differences)")
        #expect(differences.contains { $0.hasPrefix("outbox_due: unexpected") }, "\(differences)")
        #expect(try expected.read { try $0.dueOutboxKeys(now: .max, limit: 10) } == [])
        _ = more
    }

    @Test("T7 an outcome for a key never fired makes an orphan, never due; a delivered orphan keeps its key")
    func orphan() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        let effect = SideEffect(
            contact: "c/1", trigger: "mql", event: "crm", kind: .integrationPush(integration: "crm"))
        try store.update { txn in
            try txn.applyDeliveryOutcome(Event(type: .outboxRetried, contact: "c/1", at: 10, item: effect.key))
            #expect(try txn.dueOutboxKeys(now: .max, limit: 10) == [], "an orphan is never due")
            let orphan = try txn.outboxEntry(effect.key)
            #expect(orphan?.kind == nil)
            #expect(orphan?.trigger == "mql")
            #expect(orphan?.event == "crm")
            #expect(
                try txn.addOutboxEntry(try #require(OutboxEntry(effect, firedSeq: 7))),
                "an undelivered orphan gives way")
            #expect(try txn.dueOutboxKeys(now: .max, limit: 10) == [effect.key])
            try txn.applyDeliveryOutcome(Event(type: .outboxDelivered, contact: "c/1", at: 20, item: "c/1/mql/other"))
            let fired = SideEffect(
                contact: "c/1", trigger: "mql", event: "other", kind: .integrationPush(integration: "crm"))
            #expect(try !txn.addOutboxEntry(try #require(OutboxEntry(fired, firedSeq: 8))), "a delivered key stays")
            #expect(try txn.outboxEntry(fired.key)?.state == .delivered)
        }
    }
}
