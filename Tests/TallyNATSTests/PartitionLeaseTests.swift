import Foundation
import Testing

@testable import TallyCluster
@testable import TallyNATS

/// Partition ownership (K3) against a real NATS server: every partition held by exactly one node, shares even,
/// and the partitions of a node that dies taken over by the live ones within the lease time.
@Suite struct PartitionLeaseTests {
    /// Every partition held by exactly one node.
    func owners(_ nodes: [PartitionLeases]) async -> [Int: [String]] {
        var owners: [Int: [String]] = [:]
        for node in nodes {
            for partition in await node.held.keys { owners[partition, default: []].append(node.node) }
        }
        return owners
    }

    @Test(.timeLimit(.minutes(2)))
    func partitionsAreSharedAndADeadNodesMoveWithinTheLeaseTime() async throws {  // K3
        let server = try NATSServer()
        let leaseTime = Duration.seconds(2)
        let nodes = ["a", "b", "c"].map { name in
            PartitionLeases(
                session: JetStreamSession(servers: [server.address], name: name), node: name, partitions: 12,
                leaseTime: leaseTime)
        }
        // Three rounds of ticks: the first node alone takes everything, then gives back as the others appear.
        for _ in 0..<3 {
            for node in nodes { _ = try await node.tick() }
        }
        var current = await owners(nodes)
        #expect(current.count == 12 && current.values.allSatisfy { $0.count == 1 })
        for node in nodes { #expect(await node.held.count == 4) }

        // c dies: it neither renews nor releases. a and b keep ticking every third of the lease time.
        let dead = Set(await nodes[2].held.keys)
        let died = ContinuousClock.now
        var movedAfter: Duration?
        while movedAfter == nil, ContinuousClock.now - died < leaseTime * 4 {
            try await Task.sleep(for: leaseTime / 3)
            for node in nodes.prefix(2) { _ = try await node.tick() }
            let live = await owners(Array(nodes.prefix(2)))
            if dead.allSatisfy({ live[$0] != nil }) { movedAfter = ContinuousClock.now - died }
        }
        let moved = try #require(movedAfter, "c's partitions were not taken over")
        // Within the lease time, plus the server's expiry sweep and one tick.
        #expect(moved <= leaseTime + .seconds(1) + leaseTime / 3)
        current = await owners(Array(nodes.prefix(2)))
        #expect(current.count == 12 && current.values.allSatisfy { $0.count == 1 })
        for node in nodes.prefix(2) { #expect(await node.held.count == 6) }
        // c comes back from a pause: its renewals fail (the leases moved on), it never holds what another holds.
        let change = try await nodes[2].tick()
        #expect(Set(change.lost) == dead)
        let all = await owners(nodes)
        #expect(all.values.allSatisfy { $0.count == 1 })
    }

    @Test func aNodeThatStopsCleanlyHandsOverAtOnce() async throws {  // K3
        let server = try NATSServer()
        let nodes = ["a", "b"].map { name in
            PartitionLeases(
                session: JetStreamSession(servers: [server.address], name: name), node: name, partitions: 6,
                leaseTime: .seconds(30))
        }
        for _ in 0..<2 {
            for node in nodes { _ = try await node.tick() }
        }
        let (first, second) = (await nodes[0].held.count, await nodes[1].held.count)
        #expect(first == 3 && second == 3)
        await nodes[1].releaseAll()
        let change = try await nodes[0].tick()  // no waiting for the 30 s lease
        #expect(change.gained.count == 3)
        #expect(await nodes[0].held.count == 6)
    }
}
