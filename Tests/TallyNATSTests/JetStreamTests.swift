import Foundation
import Testing

@testable import TallyNATS

/// JetStream against a real server: the partitioned event stream Tally publishes to (K1), acknowledgements after
/// storage and deduplication by event id (K2, S6), and reading one partition from a sequence (K3).
@Suite struct JetStreamTests {
    func events(_ server: NATSServer) async throws -> (NATSConnection, JetStream) {
        let connection = try await NATSConnection.connect(to: [server.address], name: "test")
        let jetStream = JetStream(connection)
        try await jetStream.createOrUpdateStream(StreamConfiguration(name: "EVENTS", subjects: ["tally.events.*"]))
        return (connection, jetStream)
    }

    @Test func aBatchIsAcknowledgedInOrderAndRepublishingIsDeduplicated() async throws {  // K2, S6
        let server = try NATSServer()
        let (connection, jetStream) = try await events(server)
        let batch = (0..<10_000).map { index in
            JetStreamPublication(
                subject: "tally.events.\(index % 4)", payload: Array("{\"n\":\(index)}".utf8), messageID: "evt-\(index)"
            )
        }
        let acks = try await jetStream.publish(batch)
        #expect(acks.map(\.sequence) == Array(1...10_000))
        #expect(acks.allSatisfy { $0.stream == "EVENTS" && !$0.duplicate })
        // A client retrying the first 100 (say its 202 was lost): stored once, the first copies' sequences.
        let again = try await jetStream.publish(Array(batch.prefix(100)))
        #expect(again.map(\.sequence) == Array(1...100))
        #expect(again.allSatisfy { $0.duplicate })
        let info = try #require(try await jetStream.streamInfo("EVENTS"))
        #expect(info.state.messages == 10_000 && info.state.lastSequence == 10_000)
        await connection.close()
    }

    @Test func aPublicationToNoStreamIsRefused() async throws {
        let server = try NATSServer()
        let (connection, jetStream) = try await events(server)
        await #expect(throws: NATSError.noResponders(subject: "not.a.stream")) {
            _ = try await jetStream.publish(JetStreamPublication(subject: "not.a.stream", payload: []))
        }
        #expect(try await jetStream.streamInfo("NOPE") == nil)
        await connection.close()
    }

    @Test func aReaderGetsOnePartitionFromASequenceInOrder() async throws {  // K3
        let server = try NATSServer()
        let (connection, jetStream) = try await events(server)
        let batch = (0..<300).map { index in
            JetStreamPublication(subject: "tally.events.\(index % 3)", payload: Array("\(index)".utf8))
        }
        _ = try await jetStream.publish(batch)
        // Partition 1 holds stream sequences 2, 5, 8, …; read it from sequence 150 on, in batches of 40.
        let reader = try await jetStream.createReader(stream: "EVENTS", from: 150, subject: "tally.events.1")
        var read: [StreamMessage] = []
        while true {
            let next = try await reader.fetch(batch: 40)
            if next.isEmpty { break }
            #expect(next.count <= 40)
            read += next
        }
        let expected = (0..<300).filter { $0 % 3 == 1 && $0 + 1 >= 150 }
        #expect(read.map(\.sequence) == expected.map { UInt64($0 + 1) })
        #expect(read.map { String(decoding: $0.payload, as: UTF8.self) } == expected.map(String.init))
        #expect(read.allSatisfy { $0.subject == "tally.events.1" })
        // A fetch that waits returns when the next event of the partition arrives.
        let waiting = Task { try await reader.fetch(batch: 10, wait: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        _ = try await jetStream.publish(JetStreamPublication(subject: "tally.events.0", payload: Array("other".utf8)))
        _ = try await jetStream.publish(JetStreamPublication(subject: "tally.events.1", payload: Array("late".utf8)))
        let late = try await waiting.value
        #expect(late.map { String(decoding: $0.payload, as: UTF8.self) } == ["late"])
        #expect(late.first?.sequence == 302)
        await reader.close()
        // Read your writes (K4) starts from the last sequence of a partition: 302 for partition 1, 301 for 0, none
        // for a partition without messages.
        #expect(try await jetStream.lastSequence(stream: "EVENTS", subject: "tally.events.1") == 302)
        #expect(try await jetStream.lastSequence(stream: "EVENTS", subject: "tally.events.0") == 301)
        #expect(try await jetStream.lastSequence(stream: "EVENTS", subject: "tally.events.7") == 0)
        await connection.close()
    }

    @Test func aStreamsLimitsCanChange() async throws {
        let server = try NATSServer()
        let (connection, jetStream) = try await events(server)
        var changed = StreamConfiguration(name: "EVENTS", subjects: ["tally.events.*", "tally.rules"])
        changed.duplicateWindow = 600_000_000_000
        let info = try await jetStream.createOrUpdateStream(changed)
        #expect(info.config.subjects == ["tally.events.*", "tally.rules"])
        #expect(info.config.duplicateWindow == 600_000_000_000)
        await connection.close()
    }
}

/// The key-value bucket that holds partition leases (K3): one holder at a time, renewals by revision, and a lease
/// nobody renews expiring so that another node takes it.
@Suite struct KeyValueTests {
    @Test func onlyOneNodeTakesALeaseAndOnlyItsHolderRenewsIt() async throws {  // K3
        let server = try NATSServer()
        let a = try await NATSConnection.connect(to: [server.address], name: "node-a")
        let b = try await NATSConnection.connect(to: [server.address], name: "node-b")
        let leasesA = try await KeyValueBucket.create("leases", ttl: .seconds(2), in: JetStream(a))
        let leasesB = try await KeyValueBucket.create("leases", ttl: .seconds(2), in: JetStream(b))
        let taken = try await leasesA.create("partition.7", Array("node-a".utf8))
        await #expect(throws: NATSError.self) { try await leasesB.create("partition.7", Array("node-b".utf8)) }
        let renewed = try await leasesA.update("partition.7", Array("node-a".utf8), revision: taken)
        #expect(renewed > taken)
        await #expect(throws: NATSError.self) {
            try await leasesB.update("partition.7", Array("node-b".utf8), revision: taken)  // a stale revision
        }
        let seen = try #require(try await leasesB.get("partition.7"))
        #expect(seen.value == Array("node-a".utf8) && seen.revision == renewed)
        // node-a stops renewing: within the time to live (and the server's expiry sweep) node-b can take it.
        let deadline = ContinuousClock.now + .seconds(10)
        var takenOver: UInt64?
        while takenOver == nil, ContinuousClock.now < deadline {
            takenOver = try? await leasesB.create("partition.7", Array("node-b".utf8))
            if takenOver == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(takenOver != nil)
        #expect(try await leasesA.get("partition.7")?.value == Array("node-b".utf8))
        await a.close()
        await b.close()
    }

    @Test func aReleasedLeaseIsFreeAtOnce() async throws {
        let server = try NATSServer()
        let connection = try await NATSConnection.connect(to: [server.address], name: "test")
        let bucket = try await KeyValueBucket.create("leases", in: JetStream(connection))
        #expect(try await bucket.get("p.1") == nil)
        let revision = try await bucket.create("p.1", Array("x".utf8))
        try await bucket.delete("p.1", revision: revision)
        #expect(try await bucket.get("p.1") == nil)
        #expect(try await bucket.entry("p.1")?.isDeleted == true)
        let again = try await bucket.create("p.1", Array("y".utf8))
        #expect(
            try await bucket.get("p.1")
                == KeyValueEntry(key: "p.1", value: Array("y".utf8), revision: again, isDeleted: false))
        await #expect(throws: NATSError.self) { try await bucket.put("bad key", []) }
        await connection.close()
    }
}

/// Publish acknowledgements are read without a JSON decoder on the common path; every shape reads the same.
@Suite struct PublishAckTests {
    @Test func everyShapeOfAnAcknowledgementReads() throws {
        let cases: [(String, PublishAck)] = [
            (#"{"stream":"EVENTS","seq":42}"#, PublishAck(stream: "EVENTS", sequence: 42, duplicate: false)),
            (
                #"{"stream":"EVENTS","seq":7,"duplicate":true}"#,
                PublishAck(stream: "EVENTS", sequence: 7, duplicate: true)
            ),
            (
                #"{"stream":"KV_leases","domain":"hub","seq":3}"#,
                PublishAck(stream: "KV_leases", sequence: 3, duplicate: false)
            ),
            (#"{ "stream" : "S", "seq" : 9 }"#, PublishAck(stream: "S", sequence: 9, duplicate: false)),
            (#"{"stream":"S","seq":8,"duplicate": true}"#, PublishAck(stream: "S", sequence: 8, duplicate: true)),
        ]
        for (text, expected) in cases {
            #expect(try PublishAck.decode(Array(text.utf8), subject: "s") == expected)
        }
        let refused =
            #"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"S","seq":0}"#
        #expect(throws: NATSError.jetStream(code: 400, errorCode: 10071, description: "wrong last sequence: 5")) {
            _ = try PublishAck.decode(Array(refused.utf8), subject: "s")
        }
        #expect(throws: NATSError.self) { _ = try PublishAck.decode(Array("{}".utf8), subject: "s") }
    }
}
