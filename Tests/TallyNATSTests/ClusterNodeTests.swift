import Foundation
import Logging
import TallyAPI
import TallyCore
import TallyStore
import Testing

@testable import TallyCluster
@testable import TallyEngine
@testable import TallyNATS

/// Three Tally cluster nodes in one process on a real NATS server (K1–K4): events posted through one node, every
/// contact read through another equal to a single node's fold, and after a node stops without handing over (as a
/// crashed one), its partitions taken over and folded by the others, every contact still equal.
@Suite struct ClusterNodeTests {
    @Test(.timeLimit(.minutes(3)))
    func anyNodeAnswersForAnyContactAndADeadNodesPartitionsMove() async throws {  // K1, K2, K3, K4
        let server = try NATSServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tally-nodes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logger = Logger(label: "test")
        let leaseTime = Duration.seconds(2)
        let nodes = try ["a", "b", "c"].map { name in
            try ClusterNode(
                settings: ClusterSettings(
                    servers: [server.address], node: name, partitions: 6, replicas: 1, leaseTime: leaseTime),
                dataDirectory: directory.appendingPathComponent(name).path, sessionTimeout: 30 * 60_000,
                mapSize: 1 << 30, logger: logger)
        }
        let running = nodes.enumerated().map { index, node in
            Task { try await node.run(handOver: index != 2) }
        }
        // Every partition held once, two per node.
        try await eventually("the partitions are shared") {
            var held: [Int] = []
            for node in nodes { held += await node.held }
            let third = await nodes[2].held.count
            return held.sorted() == Array(0..<6) && third == 2
        }

        let events = try ClusterFixtures.events(count: 3_000, contacts: 200, seed: 19)
        for (index, chunk) in stride(from: 0, to: events.count, by: 500).enumerated() {
            _ = try await nodes[0].append(Array(events[chunk..<min(chunk + 500, events.count)]), request: "r-\(index)")
        }
        let expected = try ClusterFixtures.singleNodeFold(events, in: directory.appendingPathComponent("single").path)
        #expect(expected.count == 200)
        try await eventually("node b answers for every contact as a single node folds it") {
            try await Self.differences(expected, through: nodes[1]) == 0
        }
        // A2 through any node (K4): every node explains a contact as its holder does, and the sums are its score.
        for (contact, state) in expected.prefix(20) {
            var documents: [ExplainDocument] = []
            for node in nodes {
                documents.append(try #require(try await node.explain(contact, asOf: nil, limit: 100)))
            }
            #expect(documents.allSatisfy { $0 == documents[0] }, "\(contact)")
            #expect(documents[0].points == state.points && documents[0].byAction.values.reduce(0, +) == state.points)
        }
        #expect(try await nodes[0].explain("nobody", asOf: nil, limit: 10) == nil)
        // A5 per partition: each node's partitions equal a fresh fold of their copies (once the shares are even:
        // the first node up took more, and gives back as the others announce themselves).
        try await eventually("each node holds two partitions") {
            var counts: [Int] = []
            for node in nodes { counts.append(await node.held.count) }
            return counts == [2, 2, 2]
        }
        for node in nodes {
            let report = try await node.verify()
            #expect(report.partitions.count == 2 && report.passed, "\(report)")
        }

        // c stops without handing over: its partitions move when their leases expire.
        let lost = await nodes[2].held
        running[2].cancel()
        _ = try? await running[2].value
        let stopped = ContinuousClock.now
        try await eventually("c's partitions are taken over") {
            let a = await nodes[0].held
            let b = await nodes[1].held
            return Set(a + b) == Set(0..<6) && Set(lost).isSubset(of: Set(a + b))
        }
        let movedAfter = ContinuousClock.now - stopped
        try await eventually("node a answers for every contact as before") {
            try await Self.differences(expected, through: nodes[0]) == 0
        }
        print(
            "cluster nodes: c's partitions \(lost) moved after \(movedAfter); folded again after \(ContinuousClock.now - stopped)"
        )
        #expect(movedAfter <= leaseTime * 2 + .seconds(1))
        for task in running.prefix(2) { task.cancel() }
        for task in running.prefix(2) { _ = try? await task.value }
    }

    static func differences(_ expected: [(String, ContactState)], through node: ClusterNode) async throws -> Int {
        var differences = 0
        for (contact, state) in expected {
            let answered = try await node.contact(contact)
            if answered.map(ContactCodec.encode) != ContactCodec.encode(state) { differences += 1 }
        }
        return differences
    }
}
