import Foundation
import Synchronization
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
        var round = Duration.zero  // how long the last round of ticks took to see it, sleep included
        while movedAfter == nil, ContinuousClock.now - died < leaseTime * 4 {
            let started = ContinuousClock.now
            try await Task.sleep(for: leaseTime / 3)
            for node in nodes.prefix(2) { _ = try await node.tick() }
            let live = await owners(Array(nodes.prefix(2)))
            round = ContinuousClock.now - started
            if dead.allSatisfy({ live[$0] != nil }) { movedAfter = ContinuousClock.now - died }
        }
        let moved = try #require(movedAfter, "c's partitions were not taken over")
        // Within the lease time, plus the server's expiry sweep and the round of ticks that saw it (a third of the
        // lease time, and longer on a loaded machine: what the ticks themselves took is not the lease's doing).
        #expect(moved <= leaseTime + .seconds(1) + max(round, leaseTime / 3))
        current = await owners(Array(nodes.prefix(2)))
        #expect(current.count == 12 && current.values.allSatisfy { $0.count == 1 })
        for node in nodes.prefix(2) { #expect(await node.held.count == 6) }
        // c comes back from a pause: its renewals fail (the leases moved on), it never holds what another holds. a and
        // b, alive, renew theirs meanwhile (they tick every third of the lease time), and each node counts as held
        // only the leases it renewed in time, as a live node's watch does (`dropOverdue`).
        for node in nodes.prefix(2) { _ = try await node.tick() }
        let change = try await nodes[2].tick()
        #expect(Set(change.lost) == dead)
        for node in nodes { _ = await node.dropOverdue() }
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

    /// A partition given back above the fair share is stopped by the node before its lease is deleted, so that the
    /// node taking it never folds or delivers it while the first still does.
    @Test func aPartitionGivenBackIsStoppedBeforeItsLeaseIsFree() async throws {  // K3, T7
        let server = try NATSServer()
        let nodes = ["a", "b"].map { name in
            PartitionLeases(
                session: JetStreamSession(servers: [server.address], name: name), node: name, partitions: 4,
                leaseTime: .seconds(30))
        }
        _ = try await nodes[0].tick()
        #expect(await nodes[0].held.count == 4)
        _ = try await nodes[1].tick()  // announces b; a's share becomes 2
        let holders = Mutex<[Int: String?]>([:])
        let change = try await nodes[0].tick(stopping: { partitions in
            for partition in partitions {
                let holder = try? await nodes[0].holder(of: partition)
                holders.withLock { $0[partition] = holder }
            }
        })
        #expect(change.released.count == 2)
        #expect(holders.withLock { $0 } == Dictionary(uniqueKeysWithValues: change.released.map { ($0, "a") }))
        for partition in change.released { #expect(try await nodes[0].holder(of: partition) == nil) }
        #expect(try await nodes[1].tick().gained.sorted() == change.released.sorted())
    }

    /// A node whose renewals fall behind gives its leases up on its side two thirds into the lease time, before
    /// they can expire in the bucket and be taken by another node.
    @Test func leasesNotRenewedInTimeAreGivenUpBeforeTheyExpire() async throws {  // K3
        let server = try NATSServer()
        let leases = PartitionLeases(
            session: JetStreamSession(servers: [server.address], name: "a"), node: "a", partitions: 3,
            leaseTime: .seconds(30))
        _ = try await leases.tick()
        #expect(await leases.dropOverdue(now: .now + .seconds(15)).isEmpty)
        #expect(await leases.dropOverdue(now: .now + .seconds(21)) == [0, 1, 2])
        #expect(await leases.held.isEmpty)
        // The bucket still says "a" until the lease expires: nobody else can take them before.
        #expect(try await leases.holder(of: 0) == "a")
    }
}
