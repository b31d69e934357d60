import Synchronization
public import TallyCore
public import TallyStore

/// The projection store the daemon serves, which a rebuild replaces atomically (A4): a reader takes the
/// current store once and reads a consistent snapshot from it, whichever store is current a moment later.
public final class LiveProjections: Sendable {
    private let current: Mutex<ProjectionStore>

    public init(_ store: ProjectionStore) {
        current = Mutex(store)
    }

    /// The store being served.
    public var store: ProjectionStore { current.withLock { $0 } }

    /// Runs `body` in one read transaction over the store being served.
    public func read<T>(_ body: (ProjectionTransaction) throws -> T) throws -> T {
        try store.read(body)
    }

    /// A write that must not interleave with a switch (the outbox delivery records its attempts through it, so
    /// that no attempt is recorded in a store that is being replaced).
    public func update<T: Sendable>(_ body: (ProjectionTransaction) throws -> T) throws -> T {
        try current.withLock { store in try store.update(body) }
    }

    /// Replaces the served store by `fresh`, after carrying every outbox entry of the old store over (T7).
    func replace(with fresh: ProjectionStore) throws {
        try current.withLock { store in
            let old = store
            try fresh.update { new in try old.read { oldTxn in try new.adoptOutbox(of: oldTxn) } }
            store = fresh
        }
    }
}

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
}
