import Foundation
import Testing

@testable import TallyCore
@testable import TallyEngine
@testable import TallyStore

/// K3's premise: a cluster folds each partition of the log on its own (a contact's events in its partition,
/// rules publications, rebuilds and clock events in every partition), and every contact must end with the state
/// a single node gives it folding the whole log.
@Suite struct PartitionedFoldTests {
    @Test("K3 random logs folded partition by partition give every contact the single node's state")
    func partitionsFoldLikeTheWholeLog() throws {
        let run = PropertyRun.fromEnvironment(defaultEvents: 12_000)
        let context =
            "seed \(run.seed), \(run.events) events (TALLY_FOLD_SEED=\(run.seed) TALLY_FOLD_EVENTS=\(run.events))"
        var generator = RandomLog(seed: run.seed, contacts: run.contacts, events: run.events)
        // Merges across partitions are not part of the cluster yet (Docs/cluster.md).
        generator.kinds.removeAll { $0.name == "contact.merge" }
        // The stream stores an id once within its duplicate window, across partitions: a repeated id never reaches
        // a partition (a single node skips it too).
        var seen: Set<[UInt8]> = []
        var events: [Event] = []
        for _ in 0..<run.events {
            let event = generator.next()
            if let id = event.id, !seen.insert(Array(id.utf8)).inserted { continue }
            events.append(event)
        }
        let partitioning = try #require(Partitioning(count: 3))
        func partitions(of event: Event) -> [Int] {
            event.type.switchesRules || event.type == .clock
                ? Array(0..<partitioning.count) : [partitioning.partition(of: event.contact)]
        }

        let directory = try TemporaryDirectory()
        let whole = try fold(events, in: directory.path + "/whole")
        var stores: [ProjectionStore] = []
        for partition in 0..<partitioning.count {
            stores.append(
                try fold(
                    events.filter { partitions(of: $0).contains(partition) }, in: directory.path + "/p\(partition)"))
        }

        let expected = try whole.allContacts()
        var found = 0
        for (partition, store) in stores.enumerated() {
            for (contact, _) in try store.allContacts() {
                found += 1
                #expect(
                    partitioning.partition(of: contact) == partition, "\(contact) in partition \(partition); \(context)"
                )
            }
        }
        #expect(found == expected.count, "contacts; \(context)")
        var differences = 0
        for (contact, state) in expected {
            let store = stores[partitioning.partition(of: contact)]
            let stored = try store.contact(contact)
            if stored.map(ContactCodec.encode) != ContactCodec.encode(state) {
                differences += 1
                if differences <= 5 {
                    Issue.record("\(contact): \(String(describing: stored)) ≠ \(state); \(context)")
                }
            }
        }
        #expect(differences == 0, "\(differences) contacts differ; \(context)")
        #expect(expected.count > 50 && expected.contains { $0.1.points != 0 }, "the log scores contacts; \(context)")
    }

    /// Folds `events` as a log of their own into a new store.
    private func fold(_ events: [Event], in path: String) throws -> ProjectionStore {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let log = try EventLog(directory: path + "/log", mapSize: 1 << 32)
        _ = try log.append([events])
        let store = try ProjectionStore(directory: path + "/projections", mapSize: 1 << 34)
        try store.environment.deferSync()
        let folder = try ProjectionFolder(
            log: log, store: store, sessionTimeout: BatchingPropertyTests.sessionTimeout,
            limits: ProjectionFolder.Limits())
        while try folder.step(size: 1_000) {}
        #expect(try folder.checkpoint == log.head())
        return store
    }
}
