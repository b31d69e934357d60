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
    /// The cluster's log on one server, `partitions` partitions, one replica.
    static func clusterLog(on server: NATSServer, partitions: Int) async throws -> (ClusterLog, JetStreamSession) {
        let session = JetStreamSession(servers: [server.address], name: "ingest")
        let clusterLog = ClusterLog(partitioning: try #require(Partitioning(count: partitions)), session: session)
        try await clusterLog.prepare(replicas: 1, duplicateWindow: .seconds(60))
        return (clusterLog, session)
    }

    @Test(.timeLimit(.minutes(2)))
    func replicasFoldTheirPartitionsAsASingleNodeFoldsTheLog() async throws {  // K1, K3
        let server = try NATSServer()
        let (clusterLog, session) = try await Self.clusterLog(on: server, partitions: 3)
        let partitioning = clusterLog.partitioning
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
        let following = replicas.map { replica in Task { await replica.run() } }
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

    /// T6, T7 in a cluster: the replica that holds a partition delivers its outbox and publishes each outcome to the
    /// partition; a replica that takes the partition over (a crash of the first: stopped at once) copies those
    /// outcomes before it reads the outbox, and sends none of the delivered webhooks again.
    @Test(.timeLimit(.minutes(2)))
    func aNewHolderDoesNotDeliverAgainWhatTheLastDelivered() async throws {  // K3, T6, T7
        let server = try NATSServer()
        let receiver = try WebhookReceiver()
        let (clusterLog, session) = try await Self.clusterLog(on: server, partitions: 1)
        let events = try ClusterFixtures.events(count: 20_000, contacts: 60, seed: 7)
        _ = try await clusterLog.append(events, request: "all")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tally-delivery-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let pushed = try ClusterFixtures.singleNodeFold(events, in: directory.appendingPathComponent("single").path)
            .filter { $0.1.fired.contains("mql/crm") }.map(\.0)
        #expect(pushed.count > 10)
        let configuration = try ClusterFixtures.deliveryConfiguration(webhookPort: receiver.port)
        let blocking = BlockingWork(threads: 2)
        var logger = Logger(label: "test")
        logger.logLevel = .critical  // the emails fail, as configured
        func replica(_ name: String) throws -> PartitionReplica {
            try PartitionReplica(
                partition: 0, dataDirectory: directory.appendingPathComponent(name).path, clusterLog: clusterLog,
                sessionTimeout: 30 * 60_000, mapSize: 1 << 30, delivery: (configuration, blocking), logger: logger)
        }
        /// The crm entries the replica's projections show delivered.
        func delivered(_ replica: PartitionReplica) throws -> Int {
            try replica.projector.projections.read { txn in
                try txn.outboxEntries(state: .delivered, limit: 10_000).filter { $0.event == "crm" }.count
            }
        }

        let first = try replica("a")
        try first.start()
        let running = Task { await first.run() }
        try await eventually("every push delivered and its outcome folded back from the stream") {
            try delivered(first) == pushed.count
        }
        #expect(receiver.keys().sorted() == pushed.map { "\($0)/mql/crm" }.sorted())
        first.stopDeliveringPromptly()
        running.cancel()
        await running.value
        first.stop()

        let second = try replica("b")
        try second.start()
        let taking = Task { await second.run() }
        let head = try first.log.head()
        #expect(await second.projector.projected.wait(forAtLeast: head, timeout: .seconds(30)))
        try await eventually("the new holder's outbox shows the pushes delivered") {
            try delivered(second) == pushed.count
        }
        try await Task.sleep(for: .milliseconds(500))  // time for a wrong delivery to arrive
        #expect(receiver.keys().count == pushed.count, "a push was delivered again")
        taking.cancel()
        await taking.value
        second.stop()
        await blocking.shutdown()
        await session.close()
    }
}

/// A real HTTP server for webhooks (Python's http.server on a free loopback port): records the `Idempotency-Key` of
/// every request, answers 200.
final class WebhookReceiver {
    let directory: URL
    let port: Int
    private let process = Process()

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tally-hooks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c",
            """
            import http.server, os, sys
            directory = sys.argv[1]
            class Hook(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    self.rfile.read(int(self.headers.get("content-length", 0)))
                    with open(os.path.join(directory, "keys"), "a") as out:
                        out.write(self.headers.get("Idempotency-Key", "") + "\\n")
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()
                def log_message(self, *args):
                    pass
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
            with open(os.path.join(directory, "port.tmp"), "w") as out:
                out.write(str(server.server_address[1]))
            os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
            server.serve_forever()
            """,
            directory.path,
        ]
        try process.run()
        for _ in 0..<200 {
            if let text = try? String(contentsOf: directory.appendingPathComponent("port"), encoding: .utf8),
                let port = Int(text)
            {
                self.port = port
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(process.processIdentifier, SIGKILL)
        throw NATSServerError(message: "the webhook receiver did not start")
    }

    /// The keys received so far, one per request.
    func keys() -> [String] {
        let text = (try? String(contentsOf: directory.appendingPathComponent("keys"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    deinit {
        // SIGKILL: the test process's threads block SIGTERM, and a child inherits that mask.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}
