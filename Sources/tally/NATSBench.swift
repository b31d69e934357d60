import ArgumentParser
import Foundation
import TallyCluster
import TallyCore
import TallyNATS
import TallyStore

/// `tally nats-bench`: how fast the cluster's log takes events (issue 19, K2). Publishes the ``Workload``'s events,
/// as log records, to a JetStream stream partitioned as the cluster partitions contacts, in batches with an id per event, each batch
/// waiting for its acknowledgements (what a 202 will wait for), from concurrent clients; prints events per second.
/// `scripts/nats-bench` runs it against one server and a three-server cluster.
struct NATSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nats-bench",
        abstract: "Publish generated events to a NATS JetStream stream and report the acknowledged rate.")

    @Option(help: "NATS servers, comma-separated (nats://host:port).")
    var nats = "nats://127.0.0.1:4222"

    @Option(help: "Events in total.")
    var events = 200_000

    @Option(help: "Events per batch (one request to the stream per event, acknowledged together).")
    var batch = 10_000

    @Option(help: "Concurrent clients, each on its own connection.")
    var clients = 1

    @Option(help: "Replicas of the stream (1, 3 or 5).")
    var replicas = 1

    @Option(help: "Partitions (subjects tally.events.<partition>).")
    var partitions = 16

    @Option(help: "Distinct contacts (Zipf-distributed).")
    var contacts = 100_000

    @Option(help: "Afterwards, copy partition 0 into a new local log in this directory and report the rate (K3).")
    var follow: String?

    func run() async throws {
        let servers = nats.split(separator: ",").compactMap { NATSServerAddress(String($0)) }
        guard !servers.isEmpty else { throw ValidationError("no valid NATS server in --nats") }
        guard let partitioning = Partitioning(count: partitions) else {
            throw ValidationError("--partitions must be between 1 and \(Partitioning.maximum)")
        }
        let stream = "TALLY_BENCH"
        let setup = JetStreamSession(servers: servers, name: "nats-bench", timeout: .seconds(10))
        var configuration = StreamConfiguration(name: stream, subjects: ["tally.events.*"], replicas: replicas)
        configuration.duplicateWindow = 120_000_000_000
        _ = try await setup.retrying(for: .seconds(30)) { jetStream throws(NATSError) in
            if try await jetStream.streamInfo(stream) != nil { try await jetStream.deleteStream(stream) }
            return try await jetStream.createOrUpdateStream(configuration)
        }
        await setup.close()

        let perClient = max(1, events / clients / batch)
        let work = try (0..<clients).map { client in
            try Self.batches(
                client: client, count: perClient, size: batch, contacts: contacts, partitioning: partitioning)
        }
        let start = ContinuousClock.now
        let published = try await withThrowingTaskGroup(of: Int.self) { group in
            for (client, batches) in work.enumerated() {
                group.addTask {
                    let session = JetStreamSession(
                        servers: servers, name: "nats-bench-\(client)", timeout: .seconds(30))
                    var count = 0
                    for publications in batches {
                        let acks = try await session.publish(publications)
                        count += acks.filter { !$0.duplicate }.count
                    }
                    await session.close()
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = ContinuousClock.now - start
        guard published == perClient * clients * batch else {
            throw ValidationError("the stream stored \(published) of \(perClient * clients * batch) events once")
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            "published \(published) events in \(String(format: "%.2f", seconds)) s: "
                + "\(Int(Double(published) / seconds)) events/s acknowledged "
                + "(replicas \(replicas), \(clients) client(s), batches of \(batch), \(partitions) partitions)")
        if let follow { try await copyPartition(into: follow, servers: servers, partitioning: partitioning) }
    }

    /// Copies partition 0 of the stream into a new local log (what a node taking the partition over does before
    /// it folds) and prints the rate.
    func copyPartition(into directory: String, servers: [NATSServerAddress], partitioning: Partitioning) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let log = try EventLog(directory: directory, mapSize: 1 << 36)
        let session = JetStreamSession(servers: servers, name: "nats-bench-follow", timeout: .seconds(30))
        let clusterLog = ClusterLog(stream: "TALLY_BENCH", partitioning: partitioning, session: session)
        let start = ContinuousClock.now
        let copied = try await PartitionFollower(partition: 0, log: log, clusterLog: clusterLog).catchUp(batch: 2_000)
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        await session.close()
        print(
            "copied partition 0 (\(copied) events) into a local log in \(String(format: "%.2f", seconds)) s: "
                + "\(Int(Double(copied) / seconds)) events/s")
    }

    /// A client's batches: each event's log record (what a cluster node publishes, ``EventCodec``), decoded from
    /// the workload's NDJSON line, on its contact's partition subject, with an id.
    static func batches(
        client: Int, count: Int, size: Int, contacts: Int, partitioning: Partitioning
    ) throws -> [[JetStreamPublication]] {
        var workload = Workload(contacts: contacts, seed: UInt64(client + 1))
        let decoder = EventDecoder(receivedAt: Workload.start)
        var number = 0
        return try (0..<count).map { _ in
            try (0..<size).map { _ in
                var line: [UInt8] = []
                var offsets: [Int] = []
                workload.line(into: &line, idOffsets: &offsets)
                let event = try line.dropLast().withUnsafeBytes { try decoder.decode($0) }
                number += 1
                return JetStreamPublication(
                    subject: ClusterLog.subject(partitioning.partition(of: event.contact)),
                    payload: EventCodec.encode(event), messageID: "bench-\(client)-\(number)")
            }
        }
    }
}
