import Synchronization
public import TallyAPI
import TallyCore
public import TallyStore

/// The projection store the daemon serves, which a rebuild replaces atomically (A4): a reader takes the
/// current store once and reads a consistent snapshot from it, whichever store is current a moment later.
public final class LiveProjections: Sendable {
    private let current: Mutex<ProjectionStore>
    /// Held by outbox writes and by a switch, so that no delivery is recorded in a store being replaced;
    /// readers never take it.
    private let writing = Mutex(())

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
        try writing.withLock { _ in try store.update(body) }
    }

    /// Replaces the served store by `fresh`, after carrying every outbox entry of the old store over (T7).
    func replace(with fresh: ProjectionStore) throws {
        try writing.withLock { _ in
            let old = store
            try fresh.update { new in try old.read { oldTxn in try new.adoptOutbox(of: oldTxn) } }
            current.withLock { $0 = fresh }
        }
    }
}
