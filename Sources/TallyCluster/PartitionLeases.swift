public import TallyNATS

/// One node's partition leases (SPEC K3): which partitions this node folds, kept in a JetStream key-value bucket
/// whose time to live is the lease time.
///
/// Each ``tick()`` (every third of the lease time, from ``run(every:)``):
/// - announces the node (`node.<name>`, so that every node knows how many are alive);
/// - renews the leases it holds (`partition.<p>`, compare-and-set on the revision it wrote: a lease that expired
///   and was taken by another node is lost, never taken back);
/// - gives back leases above its fair share — ⌈partitions ÷ live nodes⌉ — so that a node that joins gets some,
///   once the node has stopped folding them;
/// - takes free partitions (never set, released, or expired) up to its fair share.
///
/// A node that dies stops renewing: its leases and its announcement expire after the lease time, the live nodes'
/// fair share grows, and their next tick takes the partitions. A lease is held by one node at a time, since
/// `create` and `update` are compare-and-set on the stream's last sequence for the key. A node that cannot renew
/// (cut off from the cluster) gives its leases up on its own side before they can expire (``dropOverdue(now:)``),
/// so that it has stopped folding and delivering a partition before another node may take it.
public actor PartitionLeases {
    public nonisolated let node: String
    public nonisolated let partitions: Int
    public nonisolated let leaseTime: Duration
    /// Replicas of the lease bucket's stream (the cluster's `replicas`).
    public nonisolated let replicas: Int
    private let session: JetStreamSession
    private let bucketName: String
    private var bucketCreated = false
    /// The partitions held, with the revision of the lease's last write.
    public private(set) var held: [Int: UInt64] = [:]
    /// When each held lease was last written, taken before the write was sent: the bucket's time to live runs from
    /// a later moment, so the lease is certainly this node's until then plus the lease time.
    private var writtenAt: [Int: ContinuousClock.Instant] = [:]
    private var announcement: UInt64?

    public init(
        session: JetStreamSession, node: String, partitions: Int, leaseTime: Duration, replicas: Int = 1,
        bucket: String = "tally_leases"
    ) {
        self.replicas = replicas
        self.session = session
        self.node = node
        self.partitions = partitions
        self.leaseTime = leaseTime
        bucketName = bucket
    }

    /// What one tick changed.
    public struct Change: Sendable, Equatable {
        public var gained: [Int] = []
        public var lost: [Int] = []
        public var released: [Int] = []
    }

    static func partitionKey(_ partition: Int) -> String { "partition.\(partition)" }
    static func nodeKey(_ node: String) -> String { "node.\(node)" }

    /// One round: announce, renew, give back above the fair share — calling `stopping` with those partitions
    /// before their leases are deleted — and take free partitions up to the share.
    public func tick(stopping: @Sendable ([Int]) async -> Void = { _ in }) async throws(NATSError) -> Change {
        let bucket = try await openBucket()
        var change = Change()
        try await announce(in: bucket)
        for (partition, revision) in held.sorted(by: { $0.key < $1.key }) {
            let sent = ContinuousClock.now
            do {
                let renewed = try await bucket.update(
                    Self.partitionKey(partition), Array(node.utf8), revision: revision)
                if held[partition] != nil { (held[partition], writtenAt[partition]) = (renewed, sent) }
            } catch .jetStream(_, NATSError.wrongLastSequence, _) {
                forget(partition)  // it expired and another node took it (or it is free again)
                change.lost.append(partition)
            }
        }
        let live = try await liveNodes(in: bucket)
        let share = (partitions + max(live, 1) - 1) / max(live, 1)
        // Give back the highest partitions above the share (deterministic, so nodes converge), once stopped here.
        let surplus = Array(held.keys.sorted().dropFirst(share).reversed())
        if !surplus.isEmpty {
            let revisions = surplus.map { held[$0] }
            for partition in surplus { forget(partition) }
            await stopping(surplus)
            for (partition, revision) in zip(surplus, revisions) {
                if let revision { try? await bucket.delete(Self.partitionKey(partition), revision: revision) }
                change.released.append(partition)
            }
        }
        if held.count < share {
            // Start at a partition that depends on the node, so nodes starting together try different ones first.
            let offset = Int(
                truncatingIfNeeded: node.utf8.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1) } % UInt64(partitions))
            for step in 0..<partitions where held.count < share {
                let partition = (offset + step) % partitions
                guard held[partition] == nil, !change.released.contains(partition) else { continue }
                let sent = ContinuousClock.now
                do {
                    held[partition] = try await bucket.create(Self.partitionKey(partition), Array(node.utf8))
                    writtenAt[partition] = sent
                    change.gained.append(partition)
                } catch .jetStream(_, NATSError.wrongLastSequence, _) {
                    continue  // held by another node
                }
            }
        }
        return change
    }

    private func forget(_ partition: Int) {
        held[partition] = nil
        writtenAt[partition] = nil
    }

    /// Gives up, on this side only, the leases not renewed for two thirds of the lease time (renewals failing: the
    /// cluster unreachable, or slow), and returns them: they expire in the bucket a third of the lease time later at
    /// the soonest, and the node must have stopped folding and delivering them by then.
    public func dropOverdue(now: ContinuousClock.Instant = .now) -> [Int] {
        let overdue = writtenAt.filter { now - $0.value > leaseTime * 2 / 3 }.keys.sorted()
        for partition in overdue { forget(partition) }
        return overdue
    }

    /// The node holding `partition`'s lease now (any node's view), nil when it is free.
    public func holder(of partition: Int) async throws(NATSError) -> String? {
        let bucket = try await openBucket()
        return try await bucket.get(Self.partitionKey(partition)).map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Gives every lease back (a node that stops cleanly: the partitions move at once, not after the lease time).
    public func releaseAll() async {
        guard bucketCreated, let bucket = try? await openBucket() else { return }
        for (partition, revision) in held {
            try? await bucket.delete(Self.partitionKey(partition), revision: revision)
        }
        if let announcement { try? await bucket.delete(Self.nodeKey(node), revision: announcement) }
        held = [:]
        writtenAt = [:]
        announcement = nil
    }

    /// Takes the cluster-wide lock `name` (key `lock.<name>`, holding this node's name), waiting while another node
    /// holds it, up to `timeout`; nil when it is still held then. A lock whose holder died expires with the bucket's
    /// time to live, so what runs under it must take well under the lease time. Returns the revision to unlock with.
    /// Other failures (the bucket's stream electing a leader, a reconnection) are retried until `timeout`, then
    /// thrown.
    public func lock(_ name: String, timeout: Duration) async throws(NATSError) -> UInt64? {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                return try await openBucket().create("lock.\(name)", Array(node.utf8))
            } catch .jetStream(_, NATSError.wrongLastSequence, _) {
                guard ContinuousClock.now < deadline else { return nil }
            } catch {
                guard ContinuousClock.now < deadline else { throw error }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Frees the lock `name` taken at `revision` (a lock that expired and was taken since stays the other's).
    public func unlock(_ name: String, revision: UInt64) async {
        try? await openBucket().delete("lock.\(name)", revision: revision)
    }

    /// Ticks every third of the lease time until cancelled, reporting each change that gained or lost something;
    /// a tick that fails (the cluster unreachable for a moment) is retried at the next.
    public func run(report: @Sendable (Change) async -> Void) async {
        while !Task.isCancelled {
            if let change = try? await tick(),
                !(change.gained.isEmpty && change.lost.isEmpty && change.released.isEmpty)
            {
                await report(change)
            }
            try? await Task.sleep(for: leaseTime / 3)
        }
    }

    /// The bucket on the session's current connection (a fresh one after a reconnect), created on first use.
    private func openBucket() async throws(NATSError) -> KeyValueBucket {
        if !bucketCreated {
            let (name, ttl, replicas) = (bucketName, leaseTime, replicas)
            _ = try await session.retrying(for: leaseTime) { jetStream throws(NATSError) in
                try await KeyValueBucket.create(name, ttl: ttl, replicas: replicas, in: jetStream)
            }
            bucketCreated = true
        }
        return KeyValueBucket(name: bucketName, jetStream: try await session.jetStream())
    }

    private func announce(in bucket: KeyValueBucket) async throws(NATSError) {
        let key = Self.nodeKey(node)
        if let announcement {
            do {
                self.announcement = try await bucket.update(key, Array(node.utf8), revision: announcement)
                return
            } catch .jetStream(_, NATSError.wrongLastSequence, _) {}  // expired: announce again
        }
        announcement = try await bucket.put(key, Array(node.utf8))
    }

    /// How many nodes have announced themselves within the lease time.
    private func liveNodes(in bucket: KeyValueBucket) async throws(NATSError) -> Int {
        try await bucket.keys(matching: "node.>").count
    }

    /// The names of the nodes that announced themselves within the lease time.
    public func liveNodeNames() async throws(NATSError) -> [String] {
        try await openBucket().keys(matching: "node.>").map { String($0.dropFirst("node.".count)) }
    }
}
