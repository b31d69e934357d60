import Crypto
import Foundation
public import Logging
public import ServiceLifecycle
public import TallyAPI
public import TallyCore
public import TallyEngine
public import TallyNATS
import TallyStore

/// How a node joins a cluster (SPEC K1: `cluster:` in the configuration).
public struct ClusterSettings: Sendable {
    public var servers: [NATSServerAddress]
    /// This node's name, unique in the cluster (a NATS subject token).
    public var node: String
    public var partitions: Int
    /// Replicas of the stream and of the lease bucket.
    public var replicas: Int
    /// How long a lease lasts without renewal: a dead node's partitions move after at most this.
    public var leaseTime: Duration
    /// How long the stream remembers a message id (S6 within it across partitions).
    public var duplicateWindow: Duration

    public init(
        servers: [NATSServerAddress], node: String, partitions: Int, replicas: Int = 3,
        leaseTime: Duration = .seconds(10), duplicateWindow: Duration = .seconds(600)
    ) {
        self.servers = servers
        self.node = node
        self.partitions = partitions
        self.replicas = replicas
        self.leaseTime = leaseTime
        self.duplicateWindow = duplicateWindow
    }
}

/// A node of a Tally cluster (SPEC K1–K4): publishes events to the cluster's log, holds partition leases, folds the
/// partitions it holds (``PartitionReplica``), and answers for any contact — from its own replica, or from the
/// holder of the contact's partition over NATS (`tally.node.<name>.contact`).
public actor ClusterNode {
    public nonisolated let settings: ClusterSettings
    public nonisolated let partitioning: Partitioning
    public nonisolated let clusterLog: ClusterLog
    private let session: JetStreamSession
    private let leases: PartitionLeases
    private let dataDirectory: String
    private let sessionTimeout: Int64
    private let mapSize: Int
    private let logger: Logger
    private var replicas: [Int: (replica: PartitionReplica, running: Task<Void, Never>)] = [:]
    /// The rules file the node publishes at start when the cluster has not published that text from a file yet.
    private let rulesFile: (text: String, source: String)?
    /// The configuration the replicas deliver their outboxes with (T6, T7); nil: the node delivers nothing.
    private let delivery: Configuration?
    /// Where blocking work runs (verify, the outboxes' reads), off the cooperative pool.
    private let blocking: BlockingWork

    /// A node with `settings`, its partitions' copies and projections under `dataDirectory/partitions/`. With
    /// `delivery`, the partitions it holds deliver their outboxes with that configuration's integrations, SMTP relay
    /// and retry settings; with `rulesFile`, it publishes that rules file at start (see ``publish(rulesFile:source:)``).
    public init(
        settings: ClusterSettings, dataDirectory: String, sessionTimeout: Int64, mapSize: Int, logger: Logger,
        rulesFile: (text: String, source: String)? = nil, delivery: Configuration? = nil
    ) throws {
        self.rulesFile = rulesFile
        self.delivery = delivery
        guard let partitioning = Partitioning(count: settings.partitions) else {
            throw NATSError.protocolViolation("partitions must be between 1 and \(Partitioning.maximum)")
        }
        self.settings = settings
        self.partitioning = partitioning
        self.dataDirectory = dataDirectory
        self.sessionTimeout = sessionTimeout
        self.mapSize = mapSize
        self.logger = logger
        session = JetStreamSession(servers: settings.servers, name: "tally-\(settings.node)")
        clusterLog = ClusterLog(partitioning: partitioning, session: session)
        leases = PartitionLeases(
            session: JetStreamSession(servers: settings.servers, name: "tally-\(settings.node)-leases"),
            node: settings.node, partitions: settings.partitions, leaseTime: settings.leaseTime,
            replicas: settings.replicas)
        blocking = BlockingWork(threads: delivery?.blockingThreads ?? 2)
    }

    /// A node that never ran still stops its threads.
    deinit { blocking.shutdownNow() }

    /// Subject on which `node` answers for the contacts of the partitions it holds.
    static func contactSubject(_ node: String) -> String { "tally.node.\(node).contact" }
    /// Subject on which `node` explains the contacts of the partitions it holds (``ExplainQuery``).
    static func explainSubject(_ node: String) -> String { "tally.node.\(node).explain" }

    /// Runs the node until cancelled: prepares the stream, answers other nodes, and keeps its leases, running a
    /// replica for each partition it holds — started when it gains one, stopped when it loses or gives one back.
    /// Cancelled, it stops its replicas and, with `handOver`, gives its leases back (the partitions move at once);
    /// without, they move when they expire, as a crashed node's do.
    public func run(handOver: Bool = true) async throws {
        try await clusterLog.prepare(replicas: settings.replicas, duplicateWindow: settings.duplicateWindow)
        if let rulesFile { try await publish(rulesFile: rulesFile.text, source: rulesFile.source) }
        let answering = answer()
        let watching = Task { await watchLeases() }
        while !Task.isCancelled {
            _ = try? await leases.tick(stopping: { partitions in
                for partition in partitions { await self.stopReplica(partition) }
            })
            // The replicas follow the leases held, whatever a tick that failed half-way reported: a partition no
            // longer held was lost (another node may hold it now), and stops at once.
            let held = await leases.held
            for partition in replicas.keys.sorted() where held[partition] == nil {
                await stopReplica(partition, promptly: true)
            }
            for partition in held.keys.sorted() where replicas[partition] == nil { startReplica(partition) }
            try? await Task.sleep(for: settings.leaseTime / 3)
        }
        watching.cancel()
        await watching.value
        answering.cancel()
        for partition in replicas.keys.sorted() { await stopReplica(partition) }
        if handOver { await leases.releaseAll() }
        await session.close()
        await blocking.shutdown()
    }

    /// A3 in a cluster: publishes the rules file to every partition unless the cluster's last publication from a
    /// file had this text. The bucket `tally_rules` keeps the SHA-256 of that text; nodes starting together with the
    /// same file publish with the same message ids, which the stream stores once within its window.
    func publish(rulesFile text: String, source: String) async throws {
        let digest = SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
        let replicas = settings.replicas
        // Retried whole: after a restart of the NATS servers, their streams elect leaders before they answer.
        let bucket = try await session.retrying(for: .seconds(60)) { jetStream throws(NATSError) in
            try await KeyValueBucket.create("tally_rules", replicas: replicas, in: jetStream)
        }
        let last = try await session.retrying(for: .seconds(60)) { jetStream throws(NATSError) in
            try await KeyValueBucket(name: bucket.name, jetStream: jetStream).get("file")
        }
        guard last.map({ String(decoding: $0.value, as: UTF8.self) }) != digest else { return }
        let publication = Event(type: .rulesPublished, contact: "", at: wallClockMillis(), reason: source, text: text)
        _ = try await clusterLog.append([publication], request: "rules-\(digest)")
        _ = try? await session.retrying(for: .seconds(60)) { jetStream throws(NATSError) in
            let current = KeyValueBucket(name: bucket.name, jetStream: jetStream)
            if let last {
                return try await current.update("file", Array(digest.utf8), revision: last.revision)
            }
            return try await current.create("file", Array(digest.utf8))
        }
        logger.info("rules published to every partition", metadata: ["tally.source": "\(source)"])
    }

    /// This node's view of the cluster (K4): the live nodes, every partition's lease holder, and the copy and fold
    /// of each partition it holds.
    public func status() async throws -> ClusterStatusDocument {
        var leases: [ClusterStatusDocument.PartitionLease] = []
        for partition in 0..<settings.partitions {
            leases.append(.init(partition: partition, holder: try await self.leases.holder(of: partition)))
        }
        let held = try replicas.keys.sorted().compactMap { partition -> ClusterStatusDocument.HeldPartition? in
            guard let replica = replicas[partition]?.replica else { return nil }
            return .init(
                partition: partition, copiedThrough: try replica.log.streamPosition(),
                logHead: replica.writer.head.value, projected: replica.projector.projected.value)
        }
        return ClusterStatusDocument(
            node: settings.node, partitions: settings.partitions, nodes: try await self.leases.liveNodeNames(),
            leases: leases, held: held)
    }

    /// A5 per partition (K4): each partition this node holds, its projections against a fresh fold of its copy.
    /// Runs on the blocking pool, one partition after the other.
    public func verify() async throws -> ClusterVerifyDocument {
        var reports: [ClusterVerifyDocument.PartitionReport] = []
        for partition in replicas.keys.sorted() {
            guard let replica = replicas[partition]?.replica else { continue }
            let report = try await blocking.run { try replica.verify() }
            reports.append(.init(partition: partition, checkpoint: report.checkpoint, differences: report.differences))
        }
        return ClusterVerifyDocument(node: settings.node, partitions: reports)
    }

    /// The partitions this node holds now.
    public var held: [Int] { replicas.keys.sorted() }

    /// The replica of a partition this node holds.
    public func replica(_ partition: Int) -> PartitionReplica? { replicas[partition]?.replica }

    private func startReplica(_ partition: Int) {
        do {
            let replica = try PartitionReplica(
                partition: partition, dataDirectory: dataDirectory, clusterLog: clusterLog,
                sessionTimeout: sessionTimeout, mapSize: mapSize, delivery: delivery.map { ($0, blocking) },
                logger: logger)
            try replica.start()
            replicas[partition] = (replica, Task { await replica.run() })
            logger.info("partition taken", metadata: ["tally.partition": "\(partition)"])
        } catch {
            logger.error(
                "partition not started", metadata: ["tally.partition": "\(partition)", "tally.error": "\(error)"])
        }
    }

    /// Stops the leases' renewals from falling behind unseen: every sixth of the lease time, the partitions whose
    /// leases were not renewed for two thirds of it are stopped at once, before another node may take them.
    private func watchLeases() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.leaseTime / 6)
            let overdue = await leases.dropOverdue()
            guard !overdue.isEmpty else { continue }
            logger.warning(
                "leases not renewed in time: partitions stopped", metadata: ["tally.partitions": "\(overdue)"])
            for partition in overdue { await stopReplica(partition, promptly: true) }
        }
    }

    /// Stops a partition's replica: its delivery first (`promptly`: at once, for a partition whose lease may be
    /// another node's by now; else its attempts in flight finish), then its copy, writer and projector.
    private func stopReplica(_ partition: Int, promptly: Bool = false) async {
        guard let (replica, running) = replicas.removeValue(forKey: partition) else { return }
        if promptly { replica.stopDeliveringPromptly() }
        running.cancel()
        await running.value
        replica.stop()
        logger.info("partition given up", metadata: ["tally.partition": "\(partition)"])
    }

    /// Publishes a request's events to the cluster's log: returns once the stream stored them all (K2).
    public func append(_ events: [Event], request: String) async throws(NATSError) -> [PublishAck] {
        try await clusterLog.append(events, request: request)
    }

    /// A contact's state as the holder of its partition has folded it (K4): this node's replica, or the holder's
    /// answer over NATS. Nil for a contact without events; throws when no node holds the partition.
    public func contact(_ id: String) async throws -> ContactState? {
        let partition = partitioning.partition(of: id)
        if let replica = replicas[partition]?.replica {
            return try replica.projector.projections.read { try $0.contact(id) }
        }
        let subject = Self.contactSubject(try await holder(of: partition))
        let jetStream = try await session.jetStream()
        let answer = try await jetStream.connection.request(subject, payload: Array(id.utf8), timeout: .seconds(5))
        return try ContactAnswer.decode(answer.payload, subject: subject)
    }

    /// A2, A6 for any contact (K4): its explanation by the holder of its partition — this node's replica, or the
    /// holder's answer over NATS. Nil for a contact without events.
    public func explain(_ id: String, asOf: Int64?, limit: Int) async throws -> ExplainDocument? {
        let partition = partitioning.partition(of: id)
        if let replica = replicas[partition]?.replica {
            return try await Self.explain(ExplainQuery(id: id, asOf: asOf, limit: limit), in: replica, blocking)
        }
        let subject = Self.explainSubject(try await holder(of: partition))
        let query = try JSONEncoder().encode(ExplainQuery(id: id, asOf: asOf, limit: limit))
        let jetStream = try await session.jetStream()
        let answer = try await jetStream.connection.request(subject, payload: Array(query), timeout: .seconds(30))
        switch answer.payload.first {
        case 0: return nil
        case 1: return try JSONDecoder().decode(ExplainDocument.self, from: Data(answer.payload.dropFirst()))
        default: throw NATSError.noResponders(subject: "\(subject): the partition moved")
        }
    }

    private static func explain(
        _ query: ExplainQuery, in replica: PartitionReplica, _ blocking: BlockingWork
    ) async throws -> ExplainDocument? {
        try await blocking.run {
            try replica.projector.projections.read { txn in
                try txn.explain(contact: query.id, asOf: query.asOf, limit: query.limit).map { contact, explanation in
                    ExplainDocument(contact, explanation, asOf: query.asOf)
                }
            }
        }
    }

    /// The node holding `partition`, another than this one; throws when none does.
    private func holder(of partition: Int) async throws -> String {
        guard let owner = try await leases.holder(of: partition), owner != settings.node else {
            throw NATSError.noResponders(subject: "partition \(partition): no node holds it")
        }
        return owner
    }

    /// Answers other nodes' contact and explain requests for the partitions this node holds, on a connection of
    /// its own (one task per subject, so that a long explanation does not hold up reads), connecting again — to the
    /// first server that answers — whenever the connection closes, until cancelled.
    private func answer() -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                if let connection = try? await NATSConnection.connect(
                    to: settings.servers, name: "tally-\(settings.node)-answers")
                {
                    await answer(on: connection)
                    await connection.close()
                }
                if !Task.isCancelled { try? await Task.sleep(for: .milliseconds(500)) }
            }
        }
    }

    /// Answers on `connection` until it closes or the task is cancelled.
    private func answer(on connection: NATSConnection) async {
        guard let contacts = try? connection.subscribe(Self.contactSubject(settings.node)),
            let explanations = try? connection.subscribe(Self.explainSubject(settings.node))
        else { return }
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await request in contacts.messages {
                    guard let reply = request.replyTo else { continue }
                    let answer = await self.localAnswer(String(decoding: request.payload, as: UTF8.self))
                    try? connection.publish(reply, payload: answer)
                }
            }
            group.addTask {
                for await request in explanations.messages {
                    guard let reply = request.replyTo else { continue }
                    let answer = await self.localExplanation(request.payload)
                    try? connection.publish(reply, payload: answer)
                }
            }
        }
    }

    /// An explain answer: 0 none, 1 and the ``ExplainDocument`` as JSON, 2 the partition is not held here.
    private func localExplanation(_ payload: [UInt8]) async -> [UInt8] {
        guard let query = try? JSONDecoder().decode(ExplainQuery.self, from: Data(payload)),
            let replica = replicas[partitioning.partition(of: query.id)]?.replica
        else { return [2] }
        do {
            guard let document = try await Self.explain(query, in: replica, blocking) else { return [0] }
            return [1] + Array(try JSONEncoder().encode(document))
        } catch {
            return [2]
        }
    }

    private func localAnswer(_ id: String) -> [UInt8] {
        guard let replica = replicas[partitioning.partition(of: id)]?.replica else { return ContactAnswer.notHeld }
        do {
            return ContactAnswer.encode(try replica.projector.projections.read { try $0.contact(id) })
        } catch {
            return ContactAnswer.notHeld
        }
    }
}

/// What a node asks the holder of a contact's partition to explain.
struct ExplainQuery: Codable, Sendable {
    var id: String
    var asOf: Int64?
    var limit: Int
}

/// A node's answer for a contact: 0 none, 1 and the contact's record (``ContactCodec``), 2 the partition is not
/// held here (it moved: ask again).
enum ContactAnswer {
    static let notHeld: [UInt8] = [2]

    static func encode(_ state: ContactState?) -> [UInt8] {
        guard let state else { return [0] }
        return [1] + ContactCodec.encode(state)
    }

    static func decode(_ payload: [UInt8], subject: String) throws -> ContactState? {
        switch payload.first {
        case 0: return nil
        case 1: return try Array(payload.dropFirst()).withUnsafeBytes { try ContactCodec.decode($0) }
        default: throw NATSError.noResponders(subject: "\(subject): the partition moved")
        }
    }
}

/// A ``ClusterNode`` as a ServiceLifecycle service: runs until the graceful shutdown, then gives its leases back.
public struct ClusterNodeService: Service {
    public let node: ClusterNode

    public init(node: ClusterNode) { self.node = node }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await node.run() }
    }
}

extension ClusterSettings {
    /// The settings of `cluster:` in the configuration; throws for a NATS address that does not parse.
    public init(_ cluster: Configuration.Cluster) throws {
        let servers = try cluster.nats.map { url in
            guard let address = NATSServerAddress(url) else {
                throw NATSError.connectionFailed("cluster.nats: \"\(url)\" is not nats://host:port")
            }
            return address
        }
        self.init(
            servers: servers, node: cluster.node, partitions: cluster.partitions, replicas: cluster.replicas,
            leaseTime: .milliseconds(cluster.leaseTime), duplicateWindow: .milliseconds(cluster.duplicateWindow))
    }
}
