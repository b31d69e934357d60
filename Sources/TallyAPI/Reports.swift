/// Where a rebuild stands, for `GET /v1/rebuild`, the CLI's progress bar and the metrics.
public struct RebuildProgress: Sendable, Equatable, Codable {
    public enum Phase: String, Sendable, Codable {
        case replaying, switching, done, failed
    }

    /// The `rebuild` event's sequence number.
    public var seq: UInt64
    public var version: Int64
    public var phase: Phase
    /// Events replayed so far, and the log head when the rebuild started.
    public var replayed: UInt64
    public var total: UInt64
    /// Wall-clock epoch milliseconds.
    public var startedAt: Int64
    public var finishedAt: Int64?
    public var error: String?
    /// The `rebuild` event's `at`: what names one rebuild request across a cluster's partitions, whose copies
    /// number their events each their own way.
    public var requestedAt: Int64?

    public init(
        seq: UInt64, version: Int64, phase: Phase, replayed: UInt64, total: UInt64, startedAt: Int64,
        finishedAt: Int64? = nil, error: String? = nil, requestedAt: Int64? = nil
    ) {
        self.requestedAt = requestedAt
        self.seq = seq
        self.version = version
        self.phase = phase
        self.replayed = replayed
        self.total = total
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case seq, version, phase, replayed, total, error
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case requestedAt = "requested_at"
    }
}

/// The outcome of `verify` (A5).
public struct VerifyReport: Sendable, Equatable, Codable {
    /// The checkpoint compared at.
    public var checkpoint: UInt64
    /// What differs, in words; empty when the projections equal the replay.
    public var differences: [String]

    public var passed: Bool { differences.isEmpty }

    public init(checkpoint: UInt64, differences: [String]) {
        self.checkpoint = checkpoint
        self.differences = differences
    }
}

/// What `tally backup` wrote.
public struct BackupReport: Sendable, Codable, Equatable {
    public var directory: String
    /// The log head and the projections' checkpoint in the copy.
    public var logHead: UInt64
    public var projected: UInt64
    public var bytes: Int

    public init(directory: String, logHead: UInt64, projected: UInt64, bytes: Int) {
        self.directory = directory
        self.logHead = logHead
        self.projected = projected
        self.bytes = bytes
    }

    enum CodingKeys: String, CodingKey {
        case directory
        case logHead = "log_head"
        case projected
        case bytes
    }
}

/// `GET /v1/rebuild`: the rebuild in progress or last finished; nil when none ran since the start.
public struct RebuildStatus: Codable, Sendable, Equatable {
    public var rebuild: RebuildProgress?

    public init(rebuild: RebuildProgress?) {
        self.rebuild = rebuild
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rebuild, forKey: .rebuild)  // `null`, not absent, when none ran
    }
}
