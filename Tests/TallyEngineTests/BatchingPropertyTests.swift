import Foundation
import TallyCore
import TallyEngine
import TallyStore
import Testing

/// A fresh directory under the system temporary directory, removed when the value is released.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "tally-fold-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The size and seed of a run: `TALLY_FOLD_EVENTS` and `TALLY_FOLD_SEED` override them (`scripts/batching-test`).
struct PropertyRun {
    var events: Int
    var seed: UInt64
    var contacts: Int

    static func fromEnvironment(defaultEvents: Int) -> PropertyRun {
        let environment = ProcessInfo.processInfo.environment
        let events = environment["TALLY_FOLD_EVENTS"].flatMap { Int($0) } ?? defaultEvents
        let seed = environment["TALLY_FOLD_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        // About one contact per 20 events: contacts recur within and across batches.
        return PropertyRun(events: events, seed: seed, contacts: max(events / 20, 8))
    }
}

/// The fold never depends on batching (issue 15, A5): one random log folded through the real
/// ``ProjectionFolder`` into real LMDB projections in batches of random sizes, and again as one batch, gives the
/// same tables byte for byte — contacts, sessions, audit, outbox, outbox_due, aging and meta — and both equal the in-memory
/// ``LogReplay``.
@Suite("Batching property: the fold never depends on batch boundaries")
struct BatchingPropertyTests {
    @Test("A5 random logs folded in random batches equal one batch and the replay, byte for byte")
    func randomBatchesEqualOneBatch() throws {
        let run = PropertyRun.fromEnvironment(defaultEvents: 30_000)
        // The seed reproduces a failure: TALLY_FOLD_SEED=<seed> TALLY_FOLD_EVENTS=<events> swift test --filter …
        let context =
            "seed \(run.seed), \(run.events) events (TALLY_FOLD_SEED=\(run.seed) TALLY_FOLD_EVENTS=\(run.events))"
        print("batching property: \(context)")
        let started = Date()
        let directory = try TemporaryDirectory()
        let mapSize = 1 << 36
        let log = try EventLog(directory: directory.path + "/log", mapSize: mapSize)
        var generator = RandomLog(seed: run.seed, contacts: run.contacts, events: run.events)
        var logged = 0
        while logged < run.events {
            let count = min(10_000, run.events - logged)
            var chunk: [Event] = []
            chunk.reserveCapacity(count)
            for _ in 0..<count {
                let event = generator.next()
                if event.type == .rulesPublished, let text = event.text {
                    #expect(throws: Never.self, "generated rules must be valid; \(context)") {
                        try RulesParser.parse(text)
                    }
                }
                chunk.append(event)
            }
            _ = try log.append([chunk])
            logged += count
        }
        let head = try log.head()
        print("batching property: log written in \(Int(Date().timeIntervalSince(started) * 1000)) ms")

        // One batch per rules segment (the folder always cuts after a rules event), the default limits: each step
        // asks for exactly the events up to the next rules event (asking for more would read and drop them).
        let cuts = try log.rulesEvents().map(\.seq)
        let whole = try fold(log, into: directory.path + "/whole", limits: ProjectionFolder.Limits()) { done in
            let next = cuts.first { $0 > done } ?? head
            return Int(max(next, done + 1) - done)
        }
        print("batching property: one batch folded at \(Int(Date().timeIntervalSince(started) * 1000)) ms")
        // Random batch sizes, skewed small so that many cuts fall inside hot contacts' runs, with small caches
        // and trigger_existing passes of a few contacts per transaction.
        var random = SplitMix64(seed: run.seed ^ 0x5EED)
        let limits = ProjectionFolder.Limits(
            existingBatchSize: random.int(in: 1...7), cachedStates: random.int(in: 2...64),
            agingBatchSize: random.int(in: 1...7))
        let maximum = random.int(in: 2...5_000)
        let batched = try fold(log, into: directory.path + "/batched", limits: limits) { _ in
            random.chance(1, in: 3) ? random.int(in: 1...8) : random.int(in: 1...maximum)
        }
        // The same log through the two-thread pipeline of a rebuild and `verify`, with the same small limits.
        let pipelineSize = random.int(in: 1...maximum)
        let pipelined = try fold(log, into: directory.path + "/pipelined", limits: limits, pipelineSize: pipelineSize)
        print("batching property: pipelined batches folded at \(Int(Date().timeIntervalSince(started) * 1000)) ms")
        // And as a rebuild folds it, with its contact records deferred, in flushes of a few contacts.
        let deferring = random.int(in: 1...64)
        let deferred = try fold(
            log, into: directory.path + "/deferred", limits: limits, pipelineSize: pipelineSize, deferring: deferring)
        #expect(try whole.checkpoint() == head, "\(context)")
        #expect(try whole.indexDifferences() == [], "L1 L2 indexes; \(context)")
        try expectEqualTables(whole, batched, context: "\(context), batches up to \(maximum), \(limits)")
        try expectEqualTables(
            whole, pipelined, context: "\(context), pipelined batches of \(pipelineSize), \(limits)")
        try expectEqualTables(
            whole, deferred,
            context: "\(context), pipelined batches of \(pipelineSize), contacts deferred by \(deferring), \(limits)")
        // The log must reach what batching could break: every table has records.
        let sizes = try whole.rawTables().map { "\($0.name) \($0.records.count)" }.joined(separator: ", ")
        // (The due index may have emptied by the end: the audit's expiries and decays below show it was reached.)
        for table in try whole.rawTables()
        where !["aging", "aging_awards", "existing_done", "relays"].contains(table.name) {
            #expect(!table.records.isEmpty, "\(table.name) is empty; \(context)")
        }
        // F1 F2: the log reaches contacts with fields and with standing fit-score awards.
        let states = try whole.allContacts().map(\.1)
        #expect(states.contains { !$0.fields.isEmpty }, "no contact has fields; \(context)")
        #expect(states.contains { !$0.fieldAwards.isEmpty }, "no contact has a fit-score award; \(context)")
        // D2 D3: the log reaches expiries and decays.
        let kinds = try whole.read { txn in
            try whole.allContacts().reduce(into: Set<UInt8>()) { kinds, contact in
                for entry in try txn.audit(contact: contact.0) { kinds.insert(entry.kind.rawValue) }
            }
        }
        #expect(kinds.contains(Award.Kind.expiry.rawValue), "no award expired; \(context)")
        #expect(kinds.contains(Award.Kind.decay.rawValue), "no award decayed; \(context)")

        print("batching property: random batches folded at \(Int(Date().timeIntervalSince(started) * 1000)) ms")
        let replay = try LogReplay.replay(try log.read(from: 1, limit: Int(head)), sessionTimeout: Self.sessionTimeout)
        try expectEqualToReplay(whole, replay, context: context)
        print(
            "batching property: done, \(context), batches up to \(maximum), \(limits), \(cuts.count) rules events; "
                + "tables: \(sizes); in "
                + "\(Int(Date().timeIntervalSince(started))) s")
    }

    static let sessionTimeout: Int64 = 30 * 60_000

    /// Folds the whole log into a new store, `size(checkpoint)` events per step.
    private func fold(
        _ log: EventLog, into path: String, limits: ProjectionFolder.Limits, size: (UInt64) -> Int
    ) throws -> ProjectionStore {
        let store = try ProjectionStore(directory: path, mapSize: 1 << 36)
        try store.environment.deferSync()
        let folder = try ProjectionFolder(log: log, store: store, sessionTimeout: Self.sessionTimeout, limits: limits)
        while try folder.step(size: size(folder.checkpoint)) {}
        return store
    }

    /// Folds the whole log into a new store through a ``FoldPipeline`` of `pipelineSize` events per batch, deferring
    /// contact records by up to `deferring` when set.
    private func fold(
        _ log: EventLog, into path: String, limits: ProjectionFolder.Limits, pipelineSize: Int, deferring: Int? = nil
    ) throws -> ProjectionStore {
        let store = try ProjectionStore(directory: path, mapSize: 1 << 36)
        try store.environment.deferSync()
        let folder = try ProjectionFolder(log: log, store: store, sessionTimeout: Self.sessionTimeout, limits: limits)
        try FoldPipeline(folder, deferring: deferring).run(size: pipelineSize)
        #expect(try folder.checkpoint == log.head())
        return store
    }

    /// Every table equal, record for record, byte for byte.
    private func expectEqualTables(_ expected: ProjectionStore, _ actual: ProjectionStore, context: String) throws {
        let (left, right) = (try expected.rawTables(), try actual.rawTables())
        for (one, other) in zip(left, right) {
            #expect(one.records.count == other.records.count, "\(one.name): record counts; \(context)")
            var shown = 0
            for (a, b) in zip(one.records, other.records) where a.key != b.key || a.value != b.value {
                Issue.record("\(one.name): \(Self.describe(a.key)) differs from \(Self.describe(b.key)); \(context)")
                shown += 1
                if shown == 5 { break }
            }
        }
    }

    /// The stored projections equal the in-memory replay: each contact's state encoded, the open sessions, each
    /// contact's audit trail, and the outbox's keys.
    private func expectEqualToReplay(_ store: ProjectionStore, _ replay: LogReplay, context: String) throws {
        let contacts = try store.allContacts()
        #expect(contacts.count == replay.projection.contacts.count, "contacts; \(context)")
        var different = 0
        try store.read { txn in
            for (id, state) in contacts where different < 5 {
                let key = ByteString(id)
                let expected = replay.projection.contacts[key].map { ContactCodec.encode($0) }
                if expected != ContactCodec.encode(state) {
                    Issue.record("contact \(Self.describe(Array(id.utf8))) differs from the replay; \(context)")
                    different += 1
                }
                let audit = try txn.audit(contact: id)
                if audit != replay.audit[key] ?? [] {
                    Issue.record(
                        "audit of \(Self.describe(Array(id.utf8))): \(audit.count) entries, replay \(replay.audit[key]?.count ?? 0); \(context)"
                    )
                    different += 1
                }
            }
        }
        #expect(try store.allOpenHits() == replay.projection.openHits, "sessions; \(context)")
        let aging = try store.allAging()
        let expectedAging = replay.aging.sorted
        #expect(aging.count == expectedAging.count, "aging awards; \(context)")
        #expect(
            zip(aging, expectedAging).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }, "aging awards differ; \(context)")
        let outbox = try store.rawTables().first { $0.name == "outbox" }?.records ?? []
        let keys = Set(outbox.map { ByteString(String(decoding: $0.key, as: UTF8.self)) })
        // The outbox holds every side effect fired and every key a delivery outcome names (T7: an outcome for a key
        // no rule fires keeps an orphan entry).
        #expect(keys == replay.sideEffects.union(replay.deliveries.keys), "outbox keys; \(context)")
        #expect(
            replay.projection.contacts.count >= 4,
            "the log must reach the contacts with equivalent spellings; \(context)")
    }

    private static func describe(_ key: [UInt8]) -> String {
        key.map { (0x20..<0x7F).contains($0) ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
    }
}
