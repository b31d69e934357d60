import Foundation
import Testing

@testable import TallyNATS

/// The cluster's log on a real three-server JetStream cluster (K2): events published in batches with their ids to
/// a stream of three replicas while a server is killed (-9) and restarted — every acknowledged event is in the
/// stream exactly once.
@Suite struct ClusterLogTests {
    @Test(.timeLimit(.minutes(3)))
    func noAcknowledgedEventIsLostOrStoredTwiceWhenAServerDies() async throws {  // K2, S6
        let cluster = try NATSCluster()
        try await cluster.waitUntilReady()
        let session = JetStreamSession(servers: cluster.addresses, name: "publisher", timeout: .seconds(2))
        var configuration = StreamConfiguration(name: "EVENTS", subjects: ["tally.events.*"], replicas: 3)
        configuration.duplicateWindow = 600_000_000_000
        _ = try await session.retrying(for: .seconds(30)) { jetStream throws(NATSError) in
            try await jetStream.createOrUpdateStream(configuration)
        }
        let batches = 30
        let perBatch = 200
        var acknowledged: [String: UInt64] = [:]
        var killed: NATSServerAddress?
        for batch in 0..<batches {
            if batch == 8 {
                // The server the publisher is connected to, mid-stream.
                let current = try await session.jetStream().connection.server
                cluster.kill(try #require(cluster.addresses.firstIndex(of: current)))
                killed = current
            }
            if batch == 9 { #expect(try await session.jetStream().connection.server != killed) }
            if batch == 20, let dead = cluster.processes.firstIndex(where: { $0 == nil }) {
                try cluster.start(dead)
            }
            let publications = (0..<perBatch).map { offset in
                let n = batch * perBatch + offset
                return JetStreamPublication(
                    subject: "tally.events.\(n % 5)", payload: Array("{\"n\":\(n)}".utf8), messageID: "evt-\(n)")
            }
            let acks = try await session.publish(publications, patience: .seconds(60))
            for (publication, ack) in zip(publications, acks) {
                let id = try #require(publication.messageID)
                #expect(acknowledged[id] == nil)
                acknowledged[id] = ack.sequence
            }
        }
        #expect(acknowledged.count == batches * perBatch)
        #expect(Set(acknowledged.values).count == batches * perBatch)  // one stream sequence per event

        // Read the whole stream back: each event once, at the sequence its acknowledgement gave.
        let stored = try await session.retrying(for: .seconds(30)) { jetStream throws(NATSError) in
            let reader = try await jetStream.createReader(stream: "EVENTS", from: 1)
            var stored: [StreamMessage] = []
            while true {
                let next = try await reader.fetch(batch: 1000)
                if next.isEmpty { break }
                stored += next
            }
            await reader.close()
            return stored
        }
        var seen: [String: UInt64] = [:]
        for message in stored {
            let id = try #require(message.headers?["Nats-Msg-Id"])
            #expect(seen[id] == nil, "\(id) stored twice")
            seen[id] = message.sequence
        }
        #expect(seen == acknowledged)
        await session.close()
    }
}
