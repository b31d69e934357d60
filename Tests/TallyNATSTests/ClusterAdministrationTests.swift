import Foundation
import Logging
import TallyAPI
import TallyCore
import TallyNATS
import TallyStore
import Testing

@testable import TallyCluster
@testable import TallyEngine

/// The administrative operations that concern every partition, through any node of three on a real NATS server
/// (K4): a rules publication, a rebuild and its dry run (A3, A4), a clock event (D1), a contact list (L1), the outbox's listing and
/// a retry (T6), an import (M2), the change feed (L2), a merge within a partition (I2) and across partitions, an
/// erasure (I8) — each
/// reaching every partition, and the contacts then equal to a single node's fold of the same log.
@Suite struct ClusterAdministrationTests {
    @Test(.timeLimit(.minutes(4)))
    func administrationReachesEveryPartition() async throws {  // K4, A3, A4, D1, L1, L2, T6, M2, I2, I8
        let server = try NATSServer()
        let receiver = try WebhookReceiver()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tally-admin-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var logger = Logger(label: "test")
        logger.logLevel = .critical  // the emails fail, as configured
        let configuration = try ClusterFixtures.deliveryConfiguration(webhookPort: receiver.port)
        let nodes = try ["a", "b", "c"].map { name in
            try ClusterNode(
                settings: ClusterSettings(
                    servers: [server.address], node: name, partitions: 6, replicas: 1, leaseTime: .seconds(5)),
                dataDirectory: directory.appendingPathComponent(name).path, sessionTimeout: 30 * 60_000,
                mapSize: 1 << 30, logger: logger, delivery: configuration)
        }
        let running = nodes.map { node in Task { try await node.run() } }
        defer { for task in running { task.cancel() } }
        try await eventually("the partitions are shared") {
            var counts: [Int] = []
            for node in nodes { counts.append(await node.held.count) }
            return counts == [2, 2, 2]
        }
        let events = try ClusterFixtures.events(count: 2_000, contacts: 100, seed: 23)
        _ = try await nodes[0].append(events, request: "events")

        // L2 across the cluster (K4): the feed read through node c, 37 changes a page, holds the single node's changes
        // of the same log in its order, at ascending positions (stream sequences).
        let feedLog = directory.appendingPathComponent("feed").path
        _ = try ClusterFixtures.singleNodeFold(events, in: feedLog)
        var expectedFeed: [String] = []
        try ProjectionStore(directory: feedLog + "/projections", mapSize: 1 << 30).read { txn in
            try txn.forEachChange(after: 0, index: nil) { _, _, contact, entry in
                expectedFeed.append(
                    "\(contact) \(entry.group ?? "main") \(entry.delta) \(entry.scoreAfter) \(entry.action)")
                return true
            }
        }
        var feed: [ChangeDocument] = []
        var position = ChangePosition(seq: 0)
        while true {
            let page = try await again { try await nodes[2].changes(after: position, limit: 37) }
            #expect(page.changes.count <= 37)
            feed += page.changes
            if page.changes.isEmpty { break }
            position = page.next
        }
        #expect(feed.map { "\($0.contact) \($0.score) \($0.delta) \($0.points) \($0.action)" } == expectedFeed)
        #expect(zip(feed, feed.dropFirst()).allSatisfy { ClusterNode.precedes($0.position, $1.position) })
        #expect(expectedFeed.count > 100)

        // A3: one version, the fixtures' publication, in every partition; a second published through node b.
        #expect(try await again { try await nodes[2].rulesVersions() }.versions.map(\.version) == [1])
        let first = try String(
            contentsOf: ClusterFixtures.repository.appendingPathComponent("config/rules.yaml"), encoding: .utf8)
        let whitepaper = try #require(first.range(of: "    delta: 10\n"))
        let second = first.replacingCharacters(in: whitepaper, with: "    delta: 25\n")
        let published = try await again { try await nodes[1].publishRules(text: second, source: "api: test") }
        #expect(published.version == 2)
        let (versions, inForce) = try await again { try await nodes[0].rulesVersions(withText: 2) }
        #expect(versions.map(\.version) == [1, 2] && inForce == 2)
        #expect(versions[1].text == second && versions[0].text.isEmpty && versions[1].source == "api: test")

        // A4's dry run under version 2 through node b: every partition's added up, as a single node's of the log.
        let preview = try await again { try await nodes[1].previewRebuild(version: 2) }
        let live = directory.appendingPathComponent("live").path
        let publication = Event(
            type: .rulesPublished, contact: "", at: published.publishedAt, reason: "api: test", text: second)
        _ = try ClusterFixtures.singleNodeFold(events + [publication], in: live)
        let liveStore = try ProjectionStore(directory: live + "/projections", mapSize: 1 << 30)
        var singlePreview = RebuildPreview(
            try Replays.preview(
                version: 2, log: try EventLog(directory: live + "/log", mapSize: 1 << 30), live: { liveStore },
                dataDirectory: live, mapSize: 1 << 30, sessionTimeout: 30 * 60_000), version: 2)
        singlePreview.checkpoint = 0
        #expect(preview == singlePreview && preview.changed > 0 && preview.contacts == 100)

        // A4: a rebuild under version 2 through node c, done in every partition.
        let rebuild = try await again { try await nodes[2].requestRebuild(version: 2) }
        #expect(rebuild.version == 2)
        try await eventually("every partition rebuilt") {
            let partitions = try await nodes[0].rebuilds()
            return partitions.count == 6
                && partitions.allSatisfy {
                    $0.progress?.requestedAt == rebuild.requestedAt && $0.progress?.phase == .done
                }
        }
        #expect(try await failure { try await nodes[0].requestRebuild(version: 3) }?.kind == .invalid)

        // D1: a clock event through node a, 200 days after the last event, is every partition's now.
        let at = try #require(events.last?.at) + 200 * 86_400_000
        _ = try await again { try await nodes[0].tick(at: at) }
        let clock = try await again { try await nodes[1].clockState(settled: true) }
        #expect(clock.now == at)

        // The contacts as a single node folds the same log: the publications, the rebuild, the clock event.
        let log =
            events + [
                Event(type: .rulesPublished, contact: "", at: published.publishedAt, reason: "api: test", text: second),
                Event(type: .rebuild, contact: "", at: rebuild.requestedAt, value: 2),
                Event(type: .clock, contact: "", at: at),
            ]
        let single = directory.appendingPathComponent("single").path
        let expected = try ClusterFixtures.singleNodeFold(log, in: single)
        #expect(expected.contains { $0.1.points >= 25 })
        try await eventually("node b answers for every contact as a single node folds the log") {
            try await ClusterNodeTests.differences(expected, through: nodes[1]) == 0
        }

        // L1: the list through node c, 13 at a time, in the single node's order (points descending, ties in
        // descending bytes), and a tag's list by id.
        var query = ContactListQuery(sort: .pointsDescending, limit: 13)
        var paged: [String] = []
        repeat {
            let page = try await again { try await nodes[2].listContacts(query) }
            #expect(page.contacts.count <= 13)
            paged += page.contacts.map(\.contact)
            query.cursor = page.next
        } while query.cursor != nil
        let order = expected.sorted { a, b in
            a.1.points != b.1.points ? a.1.points > b.1.points : Array(b.0.utf8).lexicographicallyPrecedes(a.0.utf8)
        }
        #expect(paged == order.map(\.0))
        let tagged = try await again {
            try await nodes[1].listContacts(ContactListQuery(tag: "mql", sort: .id, limit: 1_000))
        }
        let mql = order.filter { $0.1.tags.contains("mql") }.map(\.0).sorted {
            $0.utf8.lexicographicallyPrecedes($1.utf8)
        }
        #expect(!mql.isEmpty && tagged.contacts.map(\.contact) == mql && tagged.next == nil)

        // T6: the outbox of every partition, in key order, holds the single node's keys.
        let store = try ProjectionStore(directory: single + "/projections", mapSize: 1 << 30)
        let keys = try store.read { txn in try txn.outboxEntries(state: nil, limit: 100_000) }.map(\.key)
        #expect(keys.count > 20)
        let listed = try await again { try await nodes[2].outboxEntries(state: nil, limit: 1_000) }
        #expect(listed.map(\.key) == Array(keys.prefix(1_000)))
        let page = try await again { try await nodes[2].outboxEntries(state: nil, limit: 7) }
        #expect(page.map(\.key) == Array(keys.prefix(7)))
        // A failed email retried through a node that may not hold it: pending again.
        try await eventually("an email failed") {
            try await !nodes[0].outboxEntries(state: "failed", limit: 10).isEmpty
        }
        let failed = try #require(
            try await again { try await nodes[0].outboxEntries(state: "failed", limit: 10) }.first)
        let retried = try await again { try await nodes[1].retryOutbox(key: failed.key) }
        #expect(retried.key == failed.key && retried.state == "pending")
        #expect(try await failure { try await nodes[1].retryOutbox(key: "no/such/key") }?.kind == .notFound)

        // A publication whose publisher died after reaching half the partitions: the partitions disagree (503), and
        // the next publication completes it first, so that every partition numbers the versions alike.
        let third = first.replacingCharacters(in: whitepaper, with: "    delta: 15\n")
        let half = Event(type: .rulesPublished, contact: "", at: at, reason: "api: died", text: third)
        _ = try await nodes[0].clusterLog.broadcast(half, to: 0..<3, messageID: "half")
        #expect(
            try await failure { try await nodes[1].rulesVersions() }?.message.contains("different rules versions")
                == true)
        #expect(try await again { try await nodes[2].publishRules(text: second, source: "api: again") }.version == 4)
        let completed = try await again { try await nodes[0].rulesVersions(withText: 3) }
        #expect(completed.versions.map(\.version) == [1, 2, 3, 4] && completed.inForce == 4)
        #expect(completed.versions[2].text == third && completed.versions[2].source == "api: died")

        // M2: an import's rows published to their partitions in batches (of 7 here), read through another node.
        let csv = directory.appendingPathComponent("scores.csv")
        try ("contact,points\n" + (0..<30).map { "c-\($0),\(1_000 + $0)\n" }.joined()).write(
            to: csv, atomically: true, encoding: .utf8)
        var batches: [Int] = []
        let rows = try await TallyEngine.importPoints(
            file: csv.path, name: "scores.csv", groups: [], blocking: nodes[0].blocking, batchSize: 7
        ) { events in
            batches.append(events.count)
            _ = try await nodes[0].append(events, request: "import-\(batches.count)")
        }
        #expect(rows == 30 && batches == [7, 7, 7, 7, 2])
        try await eventually("node b reads the imported scores") {
            for n in 0..<30 where try await nodes[1].contact("c-\(n)")?.state.points != Int64(1_000 + n) {
                return false
            }
            return true
        }

        // I2 within a partition: a merge published to the two contacts' partition; the merged id read through
        // another node resolves to the contact it was merged into, as a single node folds the same log.
        let partitioning = try #require(Partitioning(count: 6))
        let candidates = (30..<100).map { "c-\($0)" }
        let from = try #require(
            candidates.first { id in
                candidates.contains { $0 != id && partitioning.partition(of: $0) == partitioning.partition(of: id) }
            })
        let into = try #require(
            candidates.first { $0 != from && partitioning.partition(of: $0) == partitioning.partition(of: from) })
        let merge = Event.merge(from: from, into: into, at: at, id: "merge-1", viaIngest: false)
        _ = try await nodes[0].append([merge], request: "merge")
        let merged = try ClusterFixtures.singleNodeFold(
            log + [merge], in: directory.appendingPathComponent("merged").path
        ).first { $0.0 == into }
        let resolved = try #require(try await again { try await nodes[1].contact(from, settled: true) })
        #expect(resolved.id == into && resolved.aliases == [from])
        #expect(ContactCodec.encode(resolved.state) == merged.map { ContactCodec.encode($0.1) })

        // K4, I2 across partitions: the merged contact's history moves to the partition of the contact it is merged
        // into, which folds both in the order of their times, as a single node folds the same log; the merged id,
        // read through a third node, resolves to it. A merge that would close the cycle is refused (409) before
        // anything is published.
        let moved = try #require(
            candidates.first { $0 != from && partitioning.partition(of: $0) != partitioning.partition(of: into) })
        let across = Event.merge(from: moved, into: into, at: at, id: "merge-2", viaIngest: false)
        _ = try await again { try await nodes[2].appendJudgingMerges([across], request: "merge-2") }
        let mergedAcross = try #require(
            try ClusterFixtures.singleNodeFold(
                log + [merge, across], in: directory.appendingPathComponent("merged-across").path
            ).first { $0.0 == into })
        try await eventually("the merged contact's history reached its new partition") {
            let found = try await again { try await nodes[0].contact(moved, settled: true) }
            return found.map { ContactCodec.encode($0.state) } == ContactCodec.encode(mergedAcross.1)
        }
        let across1 = try #require(try await again { try await nodes[1].contact(moved, settled: true) })
        #expect(
            across1.id == into
                && across1.aliases == [from, moved].sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        #expect(mergedAcross.1.points != 0)
        // S6 for a merge: sent again with its id, it is the duplicate it is, not judged again (a 409 "into itself").
        let mergedAgain = try await again { try await nodes[0].appendJudgingMerges([across], request: "merge-2-again") }
        #expect(mergedAgain.map(\.duplicate) == [true])
        let cycle = Event.merge(from: into, into: moved, at: at, viaIngest: false)
        #expect(
            try await failure { try await nodes[0].appendJudgingMerges([cycle], request: "cycle") }?.kind == .conflict)

        // I2 twice in one request: X into Y (another partition), then X — Y by then — into Z, in X's partition. The
        // second is published once the first is complete, so X's history does not go back through X's partition, where
        // X is an alias of Y; all three resolve to Z, as a single node folds the request.
        let free = candidates.filter { ![from, into, moved].contains($0) }
        let x = try #require(free.first)
        let y = try #require(free.first { partitioning.partition(of: $0) != partitioning.partition(of: x) })
        let z = try #require(free.first { $0 != x && partitioning.partition(of: $0) == partitioning.partition(of: x) })
        let twice = [
            Event.merge(from: x, into: y, at: at, id: "merge-x-y", viaIngest: false),
            Event.merge(from: x, into: z, at: at, id: "merge-x-z", viaIngest: false),
        ]
        _ = try await again { try await nodes[1].appendJudgingMerges(twice, request: "merge-twice") }
        let mergedTwice = try #require(
            try ClusterFixtures.singleNodeFold(
                log + [merge, across] + twice, in: directory.appendingPathComponent("merged-twice").path
            ).first { $0.0 == z })
        // D4 across partitions: X's and Y's awards were folded before this test's clock event where they were logged,
        // and the merges place them before it again (their origin clock), so it ages them as it did on a single node.
        #expect(mergedTwice.1.points != 0)
        for id in [x, y, z] {
            let found = try #require(try await again { try await nodes[2].contact(id, settled: true) })
            #expect(found.id == z, "\(id) resolves to \(found.id)")
            #expect(
                ContactCodec.encode(found.state) == ContactCodec.encode(mergedTwice.1), "\(id): \(found.state.points)")
        }

        // I8 across the cluster (K4): the contact merged across partitions, erased through node b by an id merged
        // into it. The contact and both aliases are unknown through every node; no message left in the stream, no
        // file under any node's data directory and none of the NATS server's store holds any of the three ids; a
        // contact of the same partition is unchanged.
        let neighbour = try #require(
            (0..<30).map { "c-\($0)" }.first { partitioning.partition(of: $0) == partitioning.partition(of: into) })
        let before = try #require(try await again { try await nodes[0].contact(neighbour, settled: true) })
        let erasure = try await again { try await nodes[1].erase(contact: moved) }
        #expect(erasure.aliases == 2 && erasure.removedEvents > 0 && erasure.residue.isEmpty)
        for node in nodes {
            for id in [into, from, moved] {
                #expect(try await again { try await node.contact(id, settled: true) } == nil)
            }
        }
        let after = try #require(try await again { try await nodes[2].contact(neighbour, settled: true) })
        #expect(ContactCodec.encode(after.state) == ContactCodec.encode(before.state))
        let needles = [into, from, moved].map { Array($0.utf8) }
        let session = JetStreamSession(servers: [server.address], name: "erasure-check")
        let reader = try await session.jetStream().createReader(
            stream: "TALLY_EVENTS", from: 1, subject: "tally.events.*")
        var remaining = 0
        while true {
            let messages = try await reader.fetch(batch: 1_000, wait: .milliseconds(500))
            if messages.isEmpty { break }
            remaining += messages.count
            for message in messages {
                let contact = try EventCodec.decode(message.payload).contact
                #expect(!needles.contains(Array(contact.utf8)), "a message of an erased contact is in the stream")
            }
        }
        await reader.close()
        await session.close()
        #expect(remaining > 0)
        // A partition that moved to a node while its holder erased may have been copied there before the stream lost
        // the messages: that copy is stale when it reaches the record, and copied again within a lease tick.
        try await eventually("no node's data directory holds an erased id") {
            ["a", "b", "c"].allSatisfy { name in
                ResidueScan.files(under: directory.appendingPathComponent(name).path, containing: needles).isEmpty
            }
        }
        let natsResidue = ResidueScan.files(under: server.directory.path, containing: needles)
        #expect(natsResidue.isEmpty, "the NATS store: \(natsResidue.map(\.path))")
        for task in running { task.cancel() }
        for task in running { _ = try? await task.value }
    }

    /// Whether an error says a partition is between nodes, or the cluster unreachable for a moment (a node renewing
    /// its leases late on a loaded machine gives them up), or a partition not folded in time: the request is asked
    /// again.
    static func isPassing(_ error: any Error) -> Bool {
        // A read after the writes before it that the partition's holder had not folded in time (a loaded machine).
        if error is ClusterReadError { return true }
        guard let error = error as? EngineError else { return false }
        return error.kind == .unavailable
            && (error.message.contains("did not answer") || error.message.contains("does not answer"))
    }

    /// An operation through a node, asked again for up to 60 s while a partition moves.
    func again<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                return try await operation()
            } catch  where Self.isPassing(error) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// The error an operation through a node fails with once no partition is moving; nil when it succeeds.
    func failure<T: Sendable>(_ operation: () async throws -> T) async throws -> EngineError? {
        do {
            _ = try await again(operation)
            return nil
        } catch let error as EngineError {
            return error
        }
    }
}
