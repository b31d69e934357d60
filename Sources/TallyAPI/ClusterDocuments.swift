/// `GET /v1/cluster` (SPEC K4): a cluster node's view — itself, the live nodes, each partition's lease holder, and
/// for each partition it holds how far its copy and its fold are.
public struct ClusterStatusDocument: Codable, Sendable, Equatable {
    public var node: String
    public var partitions: Int
    /// Nodes that announced themselves within the lease time.
    public var nodes: [String]
    /// Each partition's lease holder (nil: free, moving).
    public var leases: [PartitionLease]
    public var held: [HeldPartition]

    /// A partition and the node that holds its lease.
    public struct PartitionLease: Codable, Sendable, Equatable {
        public var partition: Int
        public var holder: String?

        public init(partition: Int, holder: String?) {
            self.partition = partition
            self.holder = holder
        }
    }

    /// A partition this node folds: the stream sequence its copy has reached, its local log's head, and how far
    /// the fold is (the lag is `log_head - projected`, in stream sequences: the copy numbers events by them).
    public struct HeldPartition: Codable, Sendable, Equatable {
        public var partition: Int
        public var copiedThrough: UInt64
        public var logHead: UInt64
        public var projected: UInt64

        enum CodingKeys: String, CodingKey {
            case partition
            case copiedThrough = "copied_through"
            case logHead = "log_head"
            case projected
        }

        public init(partition: Int, copiedThrough: UInt64, logHead: UInt64, projected: UInt64) {
            self.partition = partition
            self.copiedThrough = copiedThrough
            self.logHead = logHead
            self.projected = projected
        }
    }

    public init(
        node: String, partitions: Int, nodes: [String], leases: [PartitionLease], held: [HeldPartition]
    ) {
        self.node = node
        self.partitions = partitions
        self.nodes = nodes
        self.leases = leases
        self.held = held
    }
}

/// `POST /v1/cluster/verify` (SPEC K4, A5 per partition): for each partition the node holds, the checkpoint compared
/// at and what differs (empty when its projections equal a fresh fold of its copy).
public struct ClusterVerifyDocument: Codable, Sendable, Equatable {
    public var node: String
    public var partitions: [PartitionReport]

    /// One partition's verification, and the node that made it.
    public struct PartitionReport: Codable, Sendable, Equatable {
        public var partition: Int
        public var checkpoint: UInt64
        public var differences: [String]
        public var node: String?

        public init(partition: Int, checkpoint: UInt64, differences: [String], node: String? = nil) {
            self.partition = partition
            self.checkpoint = checkpoint
            self.differences = differences
            self.node = node
        }
    }

    public var passed: Bool { partitions.allSatisfy(\.differences.isEmpty) }

    public init(node: String, partitions: [PartitionReport]) {
        self.node = node
        self.partitions = partitions
    }
}

/// `POST /v1/verify` on a cluster node (SPEC K4, A5): every partition verified by its holder. `checkpoint` and
/// `differences` read as a single node's ``VerifyReport`` (what `tally verify` prints): the highest stream sequence a
/// partition was compared at, and each partition's differences prefixed with it.
public struct ClusterVerifyReport: Codable, Sendable, Equatable {
    public var checkpoint: UInt64
    public var differences: [String]
    public var partitions: [ClusterVerifyDocument.PartitionReport]

    public var passed: Bool { differences.isEmpty }

    public init(partitions: [ClusterVerifyDocument.PartitionReport]) {
        self.partitions = partitions
        checkpoint = partitions.map(\.checkpoint).max() ?? 0
        differences = partitions.flatMap { report in report.differences.map { "partition \(report.partition): \($0)" } }
    }
}

/// `GET /v1/rebuild` on a cluster node (A4 per partition): each partition's rebuild in progress or last finished.
public struct ClusterRebuildStatus: Codable, Sendable, Equatable {
    public var partitions: [PartitionRebuild]

    /// One partition's rebuild; nil when none ran since its holder started.
    public struct PartitionRebuild: Codable, Sendable, Equatable {
        public var partition: Int
        public var rebuild: RebuildProgress?

        public init(partition: Int, rebuild: RebuildProgress?) {
            self.partition = partition
            self.rebuild = rebuild
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(partition, forKey: .partition)
            try container.encode(rebuild, forKey: .rebuild)  // `null`, not absent, when none ran
        }
    }

    public init(partitions: [PartitionRebuild]) { self.partitions = partitions }
}
