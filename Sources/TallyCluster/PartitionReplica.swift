import Foundation
public import Logging
public import TallyAPI
public import TallyEngine
public import TallyStore

/// One partition folded on the node that holds its lease (SPEC K3): its copy of the partition's stream — a local
/// event log fed by a ``PartitionFollower`` through the log's writer — and the projector that folds it, with the
/// single node's fold and formats, under `DATA/partitions/<p>/`.
///
/// The copy keeps the stream position in the log (committed with each append), so a node that held the partition
/// before resumes after what it has, and the projector resumes from its checkpoint as it does on a single node.
public final class PartitionReplica: Sendable {
    public let partition: Int
    public let log: EventLog
    public let writer: LogWriter
    public let projector: Projector
    private let follower: PartitionFollower
    private let logger: Logger
    private let directory: String
    private let mapSize: Int
    private let sessionTimeout: Int64

    public init(
        partition: Int, dataDirectory: String, clusterLog: ClusterLog, sessionTimeout: Int64, mapSize: Int,
        logger: Logger
    ) throws {
        let directory = dataDirectory + "/partitions/\(partition)"
        try FileManager.default.createDirectory(atPath: directory + "/log", withIntermediateDirectories: true)
        self.partition = partition
        self.logger = logger
        self.directory = directory
        self.mapSize = mapSize
        self.sessionTimeout = sessionTimeout
        log = try EventLog(directory: directory + "/log", mapSize: mapSize)
        writer = try LogWriter(log: log, logger: logger)
        projector = try Projector(
            log: log, directories: ProjectionDirectories(dataDirectory: directory), sessionTimeout: sessionTimeout,
            mapSize: mapSize, durability: .log, logHead: writer.head, logger: logger)
        follower = PartitionFollower(
            partition: partition, clusterLog: clusterLog, position: { [log] in try log.streamPosition() },
            append: { [writer] events, position in _ = try await writer.append(events, streamPosition: position) })
    }

    /// Starts the log's writer and the projector.
    public func start() throws {
        writer.start()
        try projector.start()
    }

    /// Copies the partition as it grows, until cancelled; the projector folds what arrives. A failure (the cluster
    /// unreachable for a moment) is logged and retried after a second, from what the copy holds.
    public func follow() async {
        while !Task.isCancelled {
            do {
                _ = try await follower.catchUp(batch: 2_000, wait: .seconds(1))
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "partition copy interrupted",
                    metadata: ["tally.partition": "\(partition)", "tally.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// A5 for this partition: the differences between its projections and a fresh fold of its copy. Blocking: it
    /// replays the whole copy.
    public func verify() throws -> VerifyReport {
        try Replays.verify(
            log: log, live: { self.projector.projections.store }, dataDirectory: directory, mapSize: mapSize,
            sessionTimeout: sessionTimeout)
    }

    /// Stops the writer (after what it was given) and the projector.
    public func stop() {
        writer.stop()
        projector.stop()
    }
}
