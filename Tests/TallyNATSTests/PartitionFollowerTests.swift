import Foundation
import TallyCore
import TallyStore
import Testing

@testable import TallyCluster
@testable import TallyNATS

/// The cluster's log end to end on a real NATS server (K1–K3): a request's events published to their partitions
/// (broadcast events to all), and each partition copied into a local log exactly once, across a restart.
@Suite struct PartitionFollowerTests {
    func temporaryLog() throws -> (EventLog, URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tally-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return (try EventLog(directory: directory.path, mapSize: 64 << 20), directory)
    }

    @Test(.timeLimit(.minutes(2)))
    func eachPartitionIsCopiedOnceInStreamOrderAcrossARestart() async throws {  // K1, K2, K3, S6
        let server = try NATSServer()
        let partitioning = try #require(Partitioning(count: 4))
        let session = JetStreamSession(servers: [server.address], name: "ingest")
        let clusterLog = ClusterLog(partitioning: partitioning, session: session)
        try await clusterLog.prepare(replicas: 1, duplicateWindow: .seconds(60))

        var random = SplitMix64(seed: 19)
        var events: [Event] = []
        for n in 0..<3_000 {
            let contact = "c-\(random.int(in: 0...199))"
            events.append(
                n == 1_500
                    ? Event(
                        type: .rulesPublished, contact: "", at: 1_000 + Int64(n), reason: "test", text: "version: 2")
                    : Event(
                        type: .assetDownload, contact: contact, at: 1_000 + Int64(n), id: n % 3 == 0 ? "evt-\(n)" : nil,
                        item: "ebook-\(n % 7)"))
        }
        let acks = try await clusterLog.append(events, request: "r-1")
        #expect(acks.count == 2_999 + 4)  // the rules publication once per partition
        // A client retrying its events with ids: every one a duplicate (within the window), nothing new stored.
        let retried = try await clusterLog.append(events.filter { $0.id != nil }, request: "r-1-retry")
        #expect(retried.count == 999 && retried.allSatisfy { $0.duplicate })

        // Partition 2, copied in two goes: a follower that stops after its first transaction, then a fresh one.
        let (log, directory) = try temporaryLog()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = PartitionFollower(partition: 2, log: log, clusterLog: clusterLog)
        let reader = try await session.jetStream().createReader(
            stream: "TALLY_EVENTS", from: 1, subject: "tally.events.2")
        let oneBatch = try await reader.fetch(batch: 100)
        await reader.close()
        let partial = try oneBatch.map { try EventCodec.decode($0.payload) }
        _ = try log.append(
            copied: partial, at: oneBatch.map(\.sequence), streamPosition: try #require(oneBatch.last?.sequence))
        let copied = try await first.catchUp(batch: 250)
        let restarted = PartitionFollower(partition: 2, log: log, clusterLog: clusterLog)
        #expect(try await restarted.catchUp() == 0)  // nothing new: it resumes after what the log holds

        let expected = events.filter {
            $0.type == .rulesPublished || partitioning.partition(of: $0.contact) == 2
        }
        #expect(oneBatch.count + copied == expected.count)
        var stored: [Event] = []
        var storedAt: [UInt64] = []
        try log.forEach { logged in
            stored.append(logged.event)
            storedAt.append(logged.seq)
            return true
        }
        // In stream order, each once, the broadcast at its place (every event's `at` is its own).
        #expect(stored.map(\.at) == expected.map(\.at))
        let same = stored == expected
        #expect(same)
        // The acknowledgements are in publication order: events 0–1499, the rules publication's copy for each
        // partition (0–3), events 1501–2999.
        let contactAcks = zip(events.filter { $0.type != .rulesPublished }, acks.prefix(1_500) + acks.suffix(1_499))
        let positions = contactAcks.filter { partitioning.partition(of: $0.0.contact) == 2 }.map(\.1.sequence)
        #expect(try log.streamPosition() == max(positions.max() ?? 0, acks[1_500 + 2].sequence))
        // Each event under its stream sequence (K2, I8: every copy numbers alike, whatever left the stream).
        #expect(storedAt == (positions + [acks[1_500 + 2].sequence]).sorted())
        #expect(try log.numberedByStream())

        // A new event of the partition, published while a follower waits for it.
        let waiting = Task {
            try await PartitionFollower(partition: 2, log: log, clusterLog: clusterLog).catchUp(wait: .seconds(10))
        }
        try await Task.sleep(for: .milliseconds(200))
        let contact = try #require((0..<1000).map { "late-\($0)" }.first { partitioning.partition(of: $0) == 2 })
        let late = try await clusterLog.append(
            [Event(type: .formSubmit, contact: contact, at: 9_999, item: "demo")], request: "r-2")
        #expect(try await waiting.value == 1)
        #expect(try log.count() == expected.count + 1)
        #expect(try log.head() == late.first?.sequence)
        await session.close()
    }

    /// I8 across copies (K3, K4): once an erasure removed a contact's messages from the stream and published its
    /// record, a copy made before the deletion is refused as stale when it reaches the record, and a copy made after
    /// numbers every event it holds as the old copy did (positions are stream sequences).
    @Test(.timeLimit(.minutes(2)))
    func aCopyMadeBeforeAnErasureIsStaleOneMadeAfterAgrees() async throws {  // I8, K3, K4
        let server = try NATSServer()
        let partitioning = try #require(Partitioning(count: 2))
        let session = JetStreamSession(servers: [server.address], name: "erasure")
        let clusterLog = ClusterLog(partitioning: partitioning, session: session)
        try await clusterLog.prepare(replicas: 1, duplicateWindow: .seconds(60))
        let ids = (0..<200).map { "c-\($0)" }.filter { partitioning.partition(of: $0) == 1 }
        let (erased, kept) = (ids[0], ids[1])
        let events = (0..<60).map { n in
            Event(type: .assetDownload, contact: n % 3 == 0 ? erased : kept, at: 1_000 + Int64(n), item: "ebook")
        }
        let acks = try await clusterLog.append(events, request: "r-1")
        let (old, oldDirectory) = try temporaryLog()
        defer { try? FileManager.default.removeItem(at: oldDirectory) }
        #expect(try await PartitionFollower(partition: 1, log: old, clusterLog: clusterLog).catchUp() == 60)

        // The erasure as a holder makes it: the contact's messages deleted, then its record published.
        let positions = zip(events, acks).filter { $0.0.contact == erased }.map(\.1.sequence)
        let jetStream = try await session.jetStream()
        for position in positions {
            #expect(try await jetStream.deleteMessage(stream: clusterLog.stream, sequence: position))
        }
        #expect(try await !jetStream.deleteMessage(stream: clusterLog.stream, sequence: positions[0]))  // gone
        let record = Event(
            type: .contactErased, contact: "hash", at: 2_000, id: "erased:hash",
            value: Int64(bitPattern: positions[0]))
        _ = try await clusterLog.broadcast(record, to: [1], messageID: "erased:hash")

        func follower(_ log: EventLog) -> PartitionFollower {
            PartitionFollower(
                partition: 1, clusterLog: clusterLog, position: { try log.streamPosition() },
                append: { events, positions, position in
                    try PartitionReplica.checkNotStale(events, log: log, partition: 1)
                    _ = try log.append(copied: events, at: positions, streamPosition: position)
                })
        }
        await #expect(throws: StaleCopyError.self) { try await follower(old).catchUp() }
        let (fresh, freshDirectory) = try temporaryLog()
        defer { try? FileManager.default.removeItem(at: freshDirectory) }
        #expect(try await follower(fresh).catchUp() == 41)
        var copied: [UInt64: Event] = [:]
        try fresh.forEach { logged in
            copied[logged.seq] = logged.event
            return true
        }
        #expect(!copied.values.contains { $0.contact == erased })
        var before: [UInt64: Event] = [:]
        try old.forEach { logged in
            if logged.event.contact == kept { before[logged.seq] = logged.event }
            return true
        }
        #expect(before.count == 40 && before.allSatisfy { copied[$0.key] == $0.value })
        await session.close()
    }

    @Test func messageIDsAreHeaderSafe() {
        #expect(ClusterLog.messageID("id:evt-1") == "id:evt-1")
        #expect(ClusterLog.messageID("id:a b\r\nX-Evil: 1") == "id:a%20b%0D%0AX-Evil:%201")
        #expect(ClusterLog.messageID("id:100%") == "id:100%25")
        #expect(ClusterLog.messageID("id:café") == "id:café")
    }
}
