import Foundation
public import Logging
import Synchronization
public import TallyAPI
import TallyCore
public import TallyEngine
public import TallyStore

/// One partition folded on the node that holds its lease (SPEC K3): its copy of the partition's stream — a local
/// event log fed by a ``PartitionFollower`` through the log's writer — and the projector that folds it, with the
/// single node's fold and formats, under `DATA/partitions/<p>/`.
///
/// The copy keeps the stream position in the log (committed with each append), so a node that held the partition
/// before resumes after what it has, and the projector resumes from its checkpoint as it does on a single node.
///
/// With a delivery configuration, the replica also delivers the partition's outbox (T6, T7): its outcome events are
/// published to the partition's subject, so that they reach the copy — and the copy of whichever node holds the
/// partition next — like any other event. A new holder reads the outbox only after its copy has caught up with the
/// stream once, so an entry whose delivery the stream records is never sent again.
public final class PartitionReplica: Sendable {
    public let partition: Int
    public let log: EventLog
    public let writer: LogWriter
    public let projector: Projector
    /// The delivery of the partition's outbox; nil when the node delivers nothing.
    public let outbox: OutboxDelivery?
    private let follower: PartitionFollower
    let clusterLog: ClusterLog
    /// 1 once the copy has read the partition to its end for the first time since the replica started.
    private let copiedOnce = SequenceWatch(0)
    /// Whether the delivery stops without waiting for its attempts in flight (see ``stopDeliveringPromptly()``).
    private let promptStop = Mutex(false)
    /// How long the delivery's attempts in flight have to finish when the replica stops.
    private let drainTime: Duration
    let logger: Logger
    let directory: String
    /// Set when the copy turned out stale (``StaleCopyError``): the node then copies the partition again.
    private let stale = Mutex(false)
    private let mapSize: Int
    private let sessionTimeout: Int64

    /// A replica of `partition` under `dataDirectory/partitions/<partition>`; with `delivery`, it delivers the
    /// partition's outbox with that configuration's integrations, SMTP relay and retry settings, and gives its
    /// attempts in flight `drainTime` to finish when it stops (its node must renew its other leases meanwhile).
    public init(
        partition: Int, dataDirectory: String, clusterLog: ClusterLog, sessionTimeout: Int64, mapSize: Int,
        delivery: (configuration: Configuration, blocking: BlockingWork)? = nil, drainTime: Duration = .seconds(2),
        logger: Logger
    ) throws {
        self.drainTime = drainTime
        let directory = Self.directory(of: partition, in: dataDirectory)
        try Self.dropDenseCopy(directory, mapSize: mapSize, logger: logger)
        try FileManager.default.createDirectory(atPath: directory + "/log", withIntermediateDirectories: true)
        self.partition = partition
        self.clusterLog = clusterLog
        self.logger = logger
        self.directory = directory
        self.mapSize = mapSize
        self.sessionTimeout = sessionTimeout
        log = try EventLog(directory: directory + "/log", mapSize: mapSize)
        writer = try LogWriter(log: log, logger: logger)
        projector = try Projector(
            log: log, directories: ProjectionDirectories(dataDirectory: directory), sessionTimeout: sessionTimeout,
            mapSize: mapSize, durability: .log, logHead: writer.head,
            home: PartitionHome(partitioning: clusterLog.partitioning, partition: partition), logger: logger)
        follower = PartitionFollower(
            partition: partition, clusterLog: clusterLog, position: { [log] in try log.streamPosition() },
            append: { [writer, log] events, positions, position in
                try Self.checkNotStale(events, log: log, partition: partition)
                _ = try await writer.append(copied: events, at: positions, streamPosition: position)
            })
        let (log, writer, projector, copiedOnce) = (log, writer, projector, copiedOnce)
        outbox = delivery.map { delivery in
            OutboxDelivery(
                projections: projector.projections, projected: projector.projected,
                outcomes: Self.outcomes(
                    clusterLog: clusterLog, log: log, writer: writer, copiedOnce: copiedOnce,
                    blocking: delivery.blocking),
                configuration: delivery.configuration, blocking: delivery.blocking,
                rulesInForce: { [projector] in projector.rules.scorer.rules }, logger: logger)
        }
    }

    /// Where the copy and projections of `partition` are.
    static func directory(of partition: Int, in dataDirectory: String) -> String {
        dataDirectory + "/partitions/\(partition)"
    }

    /// Whether the copy turned out stale (an erasure removed from the stream events it holds): it stopped copying,
    /// and the node copies the partition again.
    public var isStale: Bool { stale.withLock { $0 } }

    /// Removes a copy, with its projections, whose log numbers events densely (made before copies took the stream's
    /// sequences, `Docs/format.md`): it is copied and folded again from the stream, which holds everything it held.
    private static func dropDenseCopy(_ directory: String, mapSize: Int, logger: Logger) throws {
        guard FileManager.default.fileExists(atPath: directory + "/log/data.mdb") else { return }
        let dense = try !EventLog(directory: directory + "/log", mapSize: mapSize).numberedByStream()
        guard dense else { return }
        logger.notice(
            "partition copy numbered before stream positions: copying it again",
            metadata: ["tally.directory": "\(directory)"])
        try FileManager.default.removeItem(atPath: directory)
    }

    /// Where the delivery's outcomes go: published to the partition's subject (a request id of their own, so that
    /// the stream stores each once); the local sequence number returned is the log's head once the copy holds the
    /// last of them. The last outcome the log holds is read once the copy has caught up with the stream.
    private static func outcomes(
        clusterLog: ClusterLog, log: EventLog, writer: LogWriter, copiedOnce: SequenceWatch, blocking: BlockingWork
    ) -> OutcomeLog {
        OutcomeLog(
            append: { events in
                let acks = try await clusterLog.append(events, request: "outcome-\(UUID().uuidString)")
                guard let last = acks.map(\.sequence).max() else { return nil }
                while try await !copied(through: last, log: log, writer: writer, timeout: .seconds(60)) {}
                return try log.head()
            },
            lastOutcome: {
                while await !copiedOnce.wait(forAtLeast: 1, timeout: .seconds(1)) {
                    try Task.checkCancellation()
                }
                return try await blocking.run { try log.lastDeliveryOutcome() }
            })
    }

    /// Starts the log's writer and the projector.
    public func start() throws {
        writer.start()
        try projector.start()
    }

    /// Waits until the copy holds the partition through stream sequence `position`; false after `timeout`. The copy
    /// appends through the writer, each of its commits advancing the head: no polling. Throws when cancelled.
    private static func copied(
        through position: UInt64, log: EventLog, writer: LogWriter, timeout: Duration
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let head = writer.head.value
            if try log.streamPosition() >= position { return true }
            let left = deadline - .now
            guard left > .zero else { return false }
            _ = await writer.head.wait(forAtLeast: head &+ 1, timeout: min(left, .seconds(1)))
            try Task.checkCancellation()
        }
    }

    /// Read your writes (K4): waits until the copy holds the partition through stream sequence `position` and the
    /// projector has folded what it holds then; false after `timeout`.
    public func folded(through position: UInt64, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        guard try await Self.copied(through: position, log: log, writer: writer, timeout: timeout) else { return false }
        return await projector.projected.wait(forAtLeast: try log.head(), timeout: max(deadline - .now, .zero))
    }

    /// Copies the partition as it grows, and delivers its outbox, until cancelled; the projector folds what
    /// arrives. A failure of the copy (the cluster unreachable for a moment) is logged and retried after a second,
    /// from what the copy holds. Cancelled, the delivery stops first — its attempts in flight get the drain time to
    /// publish their outcomes, which the copy is still there to bring in — then the copy.
    public func run() async {
        // Unstructured, so that neither is cancelled with this task: they are stopped in order below.
        let copying = Task { await follow() }
        let delivering = outbox.map { outbox in
            Task(executorPreference: TallyEngine.background) { await outbox.run() }
        }
        let relaying = Task { await relay() }
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        relaying.cancel()
        await relaying.value
        if let outbox, let delivering {
            await outbox.stop(delivering, within: promptStop.withLock { $0 } ? .zero : drainTime)
        }
        copying.cancel()
        await copying.value
    }

    /// K4: publishes the relays the fold leaves (a contact's history and merge going to the partition of the contact
    /// it merges into, and later events for it) to their partitions, in order, each batch followed by the
    /// `partition.relayed` event that lets the fold forget it, until cancelled. Like the delivery, it starts once the
    /// copy has read the partition to its end and the fold has caught up with it: what an earlier holder published
    /// is forgotten by then. One published twice (a holder dying between the relays and their record) is stored
    /// once, by its message id within the duplicate window and by its event id after it.
    private func relay() async {
        while await !copiedOnce.wait(forAtLeast: 1, timeout: .seconds(1)) {
            if Task.isCancelled { return }
        }
        await finishPendingErasure()
        while !Task.isCancelled {
            do {
                let head = try log.head()
                if await !projector.projected.wait(forAtLeast: head, timeout: .seconds(1)) { continue }
                let relays = try projector.projections.read { txn in try txn.relays(limit: Self.relayBatch) }
                guard !relays.isEmpty else {
                    _ = await projector.projected.wait(forAtLeast: head &+ 1, timeout: .seconds(1))
                    continue
                }
                guard let ack = try await clusterLog.relay(relays, from: partition, at: wallClockMillis()) else {
                    continue
                }
                while try await !folded(through: ack.sequence, timeout: .seconds(60)) {}
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "partition relay interrupted",
                    metadata: ["tally.partition": "\(partition)", "tally.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Relays published per batch.
    static let relayBatch = 1_000

    private func follow() async {
        while !Task.isCancelled {
            do {
                try await follower.follow(batch: 2_000, wait: .seconds(1)) { [copiedOnce] in
                    copiedOnce.advance(to: 1)
                }
            } catch let error as StaleCopyError {
                logger.warning("partition copy stale", metadata: ["tally.error": "\(error)"])
                stale.withLock { $0 = true }
                return
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
            sessionTimeout: sessionTimeout, home: projector.home)
    }

    /// A4's dry run for this partition: its copy folded under rules `version` into a scratch environment and
    /// compared with its projections. Blocking: it replays the whole copy.
    public func preview(version: Int64) throws -> ScoreComparison {
        try Replays.preview(
            version: version, log: log, live: { self.projector.projections.store }, dataDirectory: directory,
            mapSize: mapSize, sessionTimeout: sessionTimeout, home: projector.home)
    }

    /// Makes the stop that follows cancel the delivery's attempts in flight rather than let them finish: for a
    /// partition whose lease may be another node's already.
    public func stopDeliveringPromptly() {
        promptStop.withLock { $0 = true }
    }

    /// Stops the writer (after what it was given) and the projector.
    public func stop() {
        writer.stop()
        projector.stop()
    }
}
