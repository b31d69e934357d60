import Foundation
import Logging
import TallyCore
import TallyStore
import Testing

@testable import TallyCluster
@testable import TallyEngine
@testable import TallyNATS

/// K3 end to end in one process: events published to the cluster's log, each partition copied and folded by its
/// replica (log writer and projector, the single node's), and every contact's state equal to a single node's fold
/// of the same events.
@Suite struct PartitionReplicaTests {
    @Test(.timeLimit(.minutes(2)))
    func replicasFoldTheirPartitionsAsASingleNodeFoldsTheLog() async throws {  // K1, K3
        let server = try NATSServer()
        let partitioning = try #require(Partitioning(count: 3))
        let session = JetStreamSession(servers: [server.address], name: "ingest")
        let clusterLog = ClusterLog(partitioning: partitioning, session: session)
        try await clusterLog.prepare(replicas: 1, duplicateWindow: .seconds(60))
        let events = try ClusterFixtures.events(count: 4_000, contacts: 300, seed: 2026)
        // In requests of 500, as clients would post them.
        for (index, chunk) in stride(from: 0, to: events.count, by: 500).enumerated() {
            _ = try await clusterLog.append(
                Array(events[chunk..<min(chunk + 500, events.count)]), request: "r-\(index)")
        }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tally-replica-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logger = Logger(label: "test")
        let replicas = try (0..<partitioning.count).map { partition in
            try PartitionReplica(
                partition: partition, dataDirectory: directory.path, clusterLog: clusterLog,
                sessionTimeout: 30 * 60_000, mapSize: 1 << 30, logger: logger)
        }
        for replica in replicas { try replica.start() }
        let following = replicas.map { replica in Task { await replica.follow() } }
        // Each partition's share of the events (the rules publication in every one) copied and folded.
        for replica in replicas {
            let share = events.filter {
                $0.type == .rulesPublished || partitioning.partition(of: $0.contact) == replica.partition
            }.count
            #expect(await replica.writer.head.wait(forAtLeast: UInt64(share), timeout: .seconds(30)))
            #expect(await replica.projector.projected.wait(forAtLeast: UInt64(share), timeout: .seconds(30)))
        }

        // The single node: the same events as one log, folded.
        let expected = try ClusterFixtures.singleNodeFold(events, in: directory.appendingPathComponent("single").path)
        #expect(expected.count == 300 && expected.contains { $0.1.points > 0 })
        var differences = 0
        for (contact, state) in expected {
            let replica = replicas[partitioning.partition(of: contact)]
            let folded = try replica.projector.projections.read { try $0.contact(contact) }
            if folded.map(ContactCodec.encode) != ContactCodec.encode(state) { differences += 1 }
        }
        #expect(differences == 0)
        for task in following { task.cancel() }
        for task in following { await task.value }
        for replica in replicas { replica.stop() }
        await session.close()
    }
}
