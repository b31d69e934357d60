import NIOPosix
import Synchronization

/// The threads that blocking work runs on — LMDB scans (explain, the UI's lists), replays (verify, the dry
/// run), backups, spooled imports, fsyncing outbox records, joining the engine's threads — so that none of it
/// holds a thread of the cooperative pool. One pool of `blocking_threads` threads (SPEC §7 configuration),
/// started with the engine and shut down after it.
public final class BlockingWork: Sendable {
    private let pool: NIOThreadPool
    private let running = Mutex(true)

    public init(threads: Int) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    /// Runs `work` on one of the pool's threads and returns its result.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(work)
    }

    /// Waits for the work in progress and stops the threads; later ``run(_:)`` calls throw.
    public func shutdown() async {
        guard claimShutdown() else { return }
        try? await pool.shutdownGracefully()
    }

    /// For an engine that never ran: stops the threads without waiting on the cooperative pool.
    public func shutdownNow() {
        guard claimShutdown() else { return }
        try? pool.syncShutdownGracefully()
    }

    /// True for the one caller that gets to shut the pool down.
    private func claimShutdown() -> Bool {
        running.withLock { running in
            defer { running = false }
            return running
        }
    }
}
