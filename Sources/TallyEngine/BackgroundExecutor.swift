import CGlibc
import Foundation
import Synchronization

/// A task executor of one thread at a lower priority (nice 5), for the daemon's own work that no client waits on —
/// the outbox's deliveries — so that it takes the cooperative pool's threads from no request, and the scheduler gives
/// the cores to reads and ingest first (`Docs/performance.md`, "Reads under load"). A task started with it as its
/// executor preference runs its non-isolated code, and its child tasks', on this thread, and comes back to it after
/// every suspension.
final class BackgroundExecutor: TaskExecutor, Sendable {
    /// The nice value of the executor's thread (the fold's threads run at 10).
    static let nice: Int32 = 5

    private struct Queue {
        var jobs: [UnownedJob] = []
        var head = 0
    }

    private let queue = Mutex(Queue())
    private let ready = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.withLock { $0.jobs.append(job) }
        ready.signal()
    }

    /// Runs the jobs in the order they came, for the life of the process.
    private func run() {
        _ = tally_set_thread_nice(Self.nice)
        while true {
            ready.wait()
            let job = queue.withLock { queue -> UnownedJob in
                let job = queue.jobs[queue.head]
                queue.head += 1
                if queue.head >= 1_024, queue.head * 2 >= queue.jobs.count {
                    queue.jobs.removeFirst(queue.head)
                    queue.head = 0
                }
                return job
            }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
