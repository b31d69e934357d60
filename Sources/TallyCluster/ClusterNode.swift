import CoreMetrics
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
    let session: JetStreamSession
    let leases: PartitionLeases
    let dataDirectory: String
    private let sessionTimeout: Int64
    private let mapSize: Int
    let logger: Logger
    private var replicas: [Int: (replica: PartitionReplica, running: Task<Void, Never>)] = [:]
    /// The rules file the node publishes at start when the cluster has not published that text from a file yet.
    private let rulesFile: (text: String, source: String)?
    /// The configuration the replicas deliver their outboxes with (T6, T7); nil: the node delivers nothing.
    private let delivery: Configuration?
    /// Where blocking work runs (verify, the outboxes' reads, an import's reading), off the cooperative pool.
    public nonisolated let blocking: BlockingWork
    /// How long a read after a write (`?after=`) waits for the partition's holder to fold that far.
    let readAfterTimeout: Duration
    /// How often the holder of partition 0 publishes a clock event with the wall time to every partition (D1);
    /// nil: only `POST /v1/clock` moves the partitions' now.
    private let clockInterval: Duration?

    /// A node with `settings`, its partitions' copies and projections under `dataDirectory/partitions/`. With
    /// `delivery`, the partitions it holds deliver their outboxes with that configuration's integrations, SMTP relay
    /// and retry settings; with `rulesFile`, it publishes that rules file at start
    /// (see ``publish(rulesFile:source:)``).
    public init(
        settings: ClusterSettings, dataDirectory: String, sessionTimeout: Int64, mapSize: Int, logger: Logger,
        rulesFile: (text: String, source: String)? = nil, delivery: Configuration? = nil,
        readAfterTimeout: Duration = .seconds(5), clockInterval: Duration? = nil
    ) throws {
        self.rulesFile = rulesFile
        self.clockInterval = clockInterval
        self.delivery = delivery
        self.readAfterTimeout = readAfterTimeout
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
    /// Subject on which `node` explains the contacts of the partitions it holds (``ContactQuery``).
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
        let ticking = clockInterval.map { interval in Task { await runClock(every: interval) } }
        while !Task.isCancelled {
            _ = try? await leases.tick(stopping: { partitions in
                await withDiscardingTaskGroup { group in
                    for partition in partitions { group.addTask { await self.stopReplica(partition) } }
                }
            })
            // The replicas follow the leases held, whatever a tick that failed half-way reported: a partition no
            // longer held was lost (another node may hold it now), and stops at once.
            let held = await leases.held
            for partition in replicas.keys.sorted() where held[partition] == nil {
                await stopReplica(partition, promptly: true)
            }
            for partition in held.keys.sorted() where replicas[partition] == nil { startReplica(partition) }
            for (partition, running) in replicas.sorted(by: { $0.key < $1.key }) where running.replica.isStale {
                await copyAgain(partition)
            }
            try? await Task.sleep(for: settings.leaseTime / 3)
        }
        watching.cancel()
        await watching.value
        ticking?.cancel()
        await ticking?.value
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
        // Under the rules lock, so that it does not interleave with a publication through the API in some partitions
        // and not in others (nodes starting together with the same file publish with the same message ids).
        let lock = try await leases.lock("rules", timeout: settings.leaseTime)
        let publication = Event(type: .rulesPublished, contact: "", at: wallClockMillis(), reason: source, text: text)
        do {
            _ = try await clusterLog.append([publication], request: "rules-\(digest)")
        } catch {
            if let lock { await leases.unlock("rules", revision: lock) }
            throw error
        }
        if let lock { await leases.unlock("rules", revision: lock) }
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
            reports.append(
                .init(
                    partition: partition, checkpoint: report.checkpoint, differences: report.differences,
                    node: settings.node))
        }
        return ClusterVerifyDocument(node: settings.node, partitions: reports)
    }

    /// The rules in force in a partition this node holds (every partition folds the same publications); nil when it
    /// holds none.
    public var rulesInForce: RuleSet? { replicas.min { $0.key < $1.key }?.value.replica.projector.rules.scorer.rules }

    /// Sets the node's gauges for a scrape of `GET /metrics`: `tally_partition_held` (1 or 0) for every partition,
    /// and for each partition held its copy's stream position (`tally_partition_copied_through`) and the single
    /// node's gauges of its log, fold, outbox and rebuild, with a `partition` dimension. A partition no longer held
    /// keeps its last values beside `tally_partition_held 0`.
    public func sampleMetrics() {
        for partition in 0..<settings.partitions {
            let dimensions = [("partition", String(partition))]
            let replica = replicas[partition]?.replica
            Gauge(label: "tally_partition_held", dimensions: dimensions).record(replica == nil ? 0 : 1)
            guard let replica else { continue }
            if let position = try? replica.log.streamPosition() {
                Gauge(label: "tally_partition_copied_through", dimensions: dimensions).record(Double(position))
            }
            if let pending = try? replica.projector.projections.read({ try $0.pendingRelayCount() }) {
                Gauge(label: "tally_partition_relays_pending", dimensions: dimensions).record(Double(pending))
            }
            TallyMetrics.sample(
                log: replica.log, writer: replica.writer, projector: replica.projector, dimensions: dimensions)
        }
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
                drainTime: min(.seconds(2), settings.leaseTime / 6), logger: logger)
            try replica.start()
            replicas[partition] = (replica, Task { await replica.run() })
            logger.info("partition taken", metadata: ["tally.partition": "\(partition)"])
        } catch {
            logger.error(
                "partition not started", metadata: ["tally.partition": "\(partition)", "tally.error": "\(error)"])
        }
    }

    /// Replaces a replica whose copy an erasure made stale (``StaleCopyError``) with a fresh copy of the partition.
    private func copyAgain(_ partition: Int) async {
        await stopReplica(partition, promptly: true)
        do {
            try FileManager.default.removeItem(atPath: PartitionReplica.directory(of: partition, in: dataDirectory))
        } catch {
            logger.error(
                "a stale partition copy could not be removed",
                metadata: ["tally.partition": "\(partition)", "tally.error": "\(error)"])
            return
        }
        logger.notice("partition copied again after an erasure", metadata: ["tally.partition": "\(partition)"])
        startReplica(partition)
    }

    /// D1 in a cluster: every `interval`, the node holding partition 0 publishes a clock event with the wall time to
    /// every partition (one node ticks, whichever holds it now). A failed publication is logged; the next tick
    /// tries again.
    private func runClock(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled, replicas[0] != nil else { continue }
            do {
                _ = try await tick()
            } catch {
                logger.warning("clock event not published", metadata: ["tally.error": "\(error)"])
            }
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

    /// A contact as the holder of its partition has folded it (K4): the contact its id resolves to, with its aliases
    /// (I2), from this node's replica or the holder's answer over NATS. Nil for a contact without events; throws when
    /// no node holds the partition, and ``ClusterReadError`` when `settled` (read your writes) and the holder has not
    /// folded that far in time.
    public func contact(_ id: String, settled: Bool = false) async throws -> ResolvedContact? {
        try await read(ContactQuery(id: id, settled: settled), Self.contactSubject) { query, replica in
            try await self.contact(query, in: replica)
        } decode: { payload in
            let resolved = try JSONDecoder().decode(ResolvedAnswer.self, from: Data(payload))
            return ResolvedContact(
                id: resolved.id, state: try Array(resolved.state).withUnsafeBytes { try ContactCodec.decode($0) },
                aliases: resolved.aliases)
        }
    }

    /// A2, A6 for any contact (K4): its explanation by the holder of its partition — this node's replica, or the
    /// holder's answer over NATS (its oldest entries left out if it would not fit one NATS message; the sums cover
    /// them all). Nil for a contact without events.
    public func explain(_ id: String, asOf: Int64?, limit: Int, settled: Bool = false) async throws -> ExplainDocument?
    {
        try await read(
            ContactQuery(id: id, settled: settled, asOf: asOf, limit: limit), Self.explainSubject
        ) { query, replica in
            try await self.explanation(query, in: replica)
        } decode: { payload in
            try JSONDecoder().decode(ExplainDocument.self, from: Data(payload))
        }
    }

    /// A read of the query's contact from the holder of its partition: `local` on this node's replica, else the
    /// holder's answer over NATS on `subject(holder)`, `decode`d. An id merged into a contact of another partition
    /// (I2 across partitions) is read from that contact's partition: each partition knows where the ids it holds went,
    /// so a chain of such merges is followed, up to ``mergeHops`` partitions.
    private func read<T>(
        _ query: ContactQuery, _ subject: (String) -> String,
        local: (ContactQuery, PartitionReplica) async throws -> T?, decode: (ArraySlice<UInt8>) throws -> T
    ) async throws -> T? {
        var query = query
        for _ in 0..<Self.mergeHops {
            if let replica = replica(for: query.id) {
                switch try await place(query, in: replica) {
                case .moved(let id): query.id = id
                case .here(let here): return try await local(here, replica)
                }
                continue
            }
            switch try await ask(query, subject) {
            case .none: return nil
            case .found(let payload): return try decode(payload)
            case .moved(let id): query.id = id
            }
        }
        throw MergeChainError(id: query.id, hops: Self.mergeHops)
    }

    /// Where a read goes in `replica`'s partition, once settled if it asks to be: to the contact of another partition
    /// its id was merged into, or here, as a query that no longer waits.
    private enum Placement {
        case moved(String)
        case here(ContactQuery)
    }

    private func place(_ query: ContactQuery, in replica: PartitionReplica) async throws -> Placement {
        if query.settled { try await settle(replica) }
        if let moved = try movedTo(query.id, in: replica) { return .moved(moved) }
        var here = query
        here.settled = false
        return .here(here)
    }

    /// The most partitions a read follows an id through (merges across partitions chained).
    static let mergeHops = 16

    /// The contact of another partition `id` was merged into (K4), nil when `id` resolves to a contact of `replica`'s
    /// partition or to none.
    private func movedTo(_ id: String, in replica: PartitionReplica) throws -> String? {
        try replica.projector.projections.read { txn in
            guard let canonical = try txn.canonical(of: id),
                partitioning.partition(of: canonical) != replica.partition
            else { return nil }
            return canonical
        }
    }

    private func replica(for contact: String) -> PartitionReplica? {
        replicas[partitioning.partition(of: contact)]?.replica
    }

    /// Asks the holder of the query's contact over NATS, on its subject `subject(holder)`.
    private func ask(_ query: ContactQuery, _ subject: (String) -> String) async throws -> HolderAnswer {
        let partition = partitioning.partition(of: query.id)
        let subject = subject(try await holder(of: partition))
        let jetStream = try await session.jetStream()
        let answer = try await jetStream.connection.request(
            subject, payload: Array(try JSONEncoder().encode(query)), timeout: readAfterTimeout + .seconds(25))
        switch answer.payload.first {
        case ContactAnswer.none: return .none
        case ContactAnswer.found: return .found(answer.payload.dropFirst())
        case ContactAnswer.moved: return .moved(String(decoding: answer.payload.dropFirst(), as: UTF8.self))
        case ContactAnswer.notFoldedInTime: throw ClusterReadError(partition: partition, timeout: readAfterTimeout)
        default: throw NATSError.noResponders(subject: "\(subject): the partition moved")
        }
    }

    private func contact(_ query: ContactQuery, in replica: PartitionReplica) async throws -> ResolvedContact? {
        if query.settled { try await settle(replica) }
        return try TallyEngine.resolvedContact(query.id, in: replica.projector.projections)
    }

    private func explanation(_ query: ContactQuery, in replica: PartitionReplica) async throws -> ExplainDocument? {
        if query.settled { try await settle(replica) }
        return try await blocking.run {
            try replica.projector.projections.read { txn in
                try txn.explain(
                    contact: query.id, asOf: query.asOf, limit: query.limit ?? Explanation.defaultLimit
                ).map { contact, explanation in ExplainDocument(contact, explanation, asOf: query.asOf) }
            }
        }
    }

    /// Read your writes (K4): waits until `replica` has copied and folded everything its partition held now, which
    /// includes every event whose 202 the client has; throws ``ClusterReadError`` after the read-after timeout.
    func settle(_ replica: PartitionReplica) async throws {
        let last = try await clusterLog.lastSequence(of: replica.partition)
        guard try await replica.folded(through: last, timeout: readAfterTimeout) else {
            throw ClusterReadError(partition: replica.partition, timeout: readAfterTimeout)
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
            let explanations = try? connection.subscribe(Self.explainSubject(settings.node)),
            let partitionQueries = try? connection.subscribe(Self.partitionsSubject(settings.node))
        else { return }
        let room = connection.serverInfo.maxPayload - 1024
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await request in partitionQueries.messages {
                    guard let reply = request.replyTo,
                        let query = try? JSONDecoder().decode(PartitionQuery.self, from: Data(request.payload))
                    else { continue }
                    // Each query on its own: a settled one may wait for a partition to fold.
                    Task { try? connection.publish(reply, payload: await self.answer(query, within: room)) }
                }
            }
            for (requests, explaining) in [(contacts, false), (explanations, true)] {
                group.addTask {
                    for await request in requests.messages {
                        guard let reply = request.replyTo else { continue }
                        let answer = await self.answer(request.payload, explaining: explaining, within: room)
                        try? connection.publish(reply, payload: answer)
                    }
                }
            }
        }
    }

    /// The answer to another node's ``ContactQuery`` (see ``ContactAnswer``), at most `room` bytes.
    private func answer(_ payload: [UInt8], explaining: Bool, within room: Int) async -> [UInt8] {
        guard let decoded = try? JSONDecoder().decode(ContactQuery.self, from: Data(payload)),
            let replica = replica(for: decoded.id)
        else { return [ContactAnswer.notHeld] }
        do {
            let query: ContactQuery
            switch try await place(decoded, in: replica) {
            case .moved(let id): return [ContactAnswer.moved] + Array(id.utf8)
            case .here(let here): query = here
            }
            if explaining {
                guard let document = try await explanation(query, in: replica) else { return [ContactAnswer.none] }
                return [ContactAnswer.found] + (try Self.json(document, within: room - 1))
            }
            guard let resolved = try await contact(query, in: replica) else { return [ContactAnswer.none] }
            let answer = ResolvedAnswer(
                id: resolved.id, aliases: resolved.aliases, state: Data(ContactCodec.encode(resolved.state)))
            return [ContactAnswer.found] + Array(try JSONEncoder().encode(answer))
        } catch is ClusterReadError {
            return [ContactAnswer.notFoldedInTime]
        } catch {
            return [ContactAnswer.notHeld]
        }
    }

    /// An explain document as JSON in at most `room` bytes: its oldest entries left out until it fits (its sums and
    /// `entries_total` still cover them).
    static func json(_ document: ExplainDocument, within room: Int) throws -> [UInt8] {
        var document = document
        while true {
            let json = Array(try JSONEncoder().encode(document))
            guard json.count > room, !document.entries.isEmpty else { return json }
            let keep = document.entries.count * room / json.count * 9 / 10
            document.entries.removeFirst(document.entries.count - keep)
        }
    }
}

/// What a node asks the holder of a contact's partition (K4): the contact's record, or on the explain subject its
/// explanation; `settled`: once the holder has copied and folded everything the partition held when asked (read
/// your writes).
struct ContactQuery: Codable, Sendable {
    var id: String
    var settled = false
    var asOf: Int64?
    var limit: Int?
}

/// A holder's answer for a contact (I2: the id it resolves to, and the ids merged into it), its record in
/// ``ContactCodec``'s form.
struct ResolvedAnswer: Codable, Sendable {
    var id: String
    var aliases: [String]
    var state: Data
}

/// The first byte of a holder's answer to a ``ContactQuery``: no such contact; found, followed by the contact's
/// ``ResolvedAnswer`` or the explain document (JSON); the partition is not held here (it moved: ask again);
/// not folded that far within the read-after timeout.
enum ContactAnswer {
    static let none: UInt8 = 0
    static let found: UInt8 = 1
    static let notHeld: UInt8 = 2
    static let notFoldedInTime: UInt8 = 3
    /// Followed by the id (UTF-8) of the contact of another partition that the id was merged into.
    static let moved: UInt8 = 4
}

/// A holder's answer to a ``ContactQuery``, read.
enum HolderAnswer {
    case none
    case found(ArraySlice<UInt8>)
    /// Merged into this contact, of another partition.
    case moved(String)
}

/// A read that followed an id through more merges across partitions than a read follows (a cycle the fold would
/// have refused, or an extraordinary chain).
public struct MergeChainError: Error, Sendable, CustomStringConvertible {
    public var id: String
    public var hops: Int

    public var description: String {
        "reading \"\(id)\": followed merges across \(hops) partitions without reaching the contact"
    }
}

/// A read after a write (`?after=`) that the holder of the contact's partition had not copied and folded within
/// the read-after timeout.
public struct ClusterReadError: Error, Sendable, CustomStringConvertible {
    public var partition: Int
    public var timeout: Duration

    public var description: String {
        "partition \(partition) was not copied and folded that far within \(timeout) (read_after_timeout)"
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
