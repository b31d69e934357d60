import Synchronization
import TallyAPI
import TallyCore
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

    /// Replaces the served store by `fresh`. Nothing is carried over: the fresh fold holds the outbox with the
    /// delivery outcomes of the log (T7).
    func replace(with fresh: ProjectionStore) {
        current.withLock { $0 = fresh }
    }
}
