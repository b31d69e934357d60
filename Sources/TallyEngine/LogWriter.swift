import Foundation
public import Logging
import Synchronization
public import TallyCore
public import TallyStore

/// Why events could not be appended.
public enum AppendError: Error, Sendable, CustomStringConvertible {
    /// The daemon is shutting down and takes no new events.
    case shuttingDown
    /// The disk or the map is full; nothing of the request was appended. Retrying later can succeed.
    case outOfSpace(String)
    /// Another storage failure; nothing of the request was appended.
    case storage(String)

    public var description: String {
        switch self {
        case .shuttingDown: "the daemon is shutting down"
        case .outOfSpace(let detail): "the disk is full, nothing was appended; retry later (\(detail))"
        case .storage(let detail): "the event log could not be written, nothing was appended (\(detail))"
        }
    }
}

/// The single writer of the event log, on a dedicated thread, with group commit.
///
/// Requests queue their events and suspend; the writer thread drains the whole queue into one LMDB transaction,
/// commits it durably, then resumes every request of that transaction with its receipt. While one commit
/// syncs, the next batch gathers, so concurrent clients share fsyncs. The thread owns the write transaction,
/// which therefore never crosses an `await`.
public final class LogWriter: Sendable {
    private struct Pending {
        var request: AppendRequest
        /// For an import: emits its events inside the transaction instead of ``events``.
        var stream: EventStream?
        /// Work that must run on the writer's thread while nothing is appended (an erasure's compaction, I8); run
        /// instead of an append, alone.
        var job: (@Sendable () throws -> Void)?
        /// For a cluster partition's copy: each event's stream sequence and the stream position committed with the
        /// events; appended alone.
        var copied: (positions: [UInt64], streamPosition: UInt64)?
        var continuation: CheckedContinuation<AppendReceipt, any Error>
    }

    /// Emits a stream of events (an import), possibly more than once: the same events each time.
    public typealias EventStream = @Sendable (_ emit: (Event) throws -> Void) throws -> Void

    private struct Queue {
        var pending: [Pending] = []
        var stopping = false
        var stopped = false
        /// Why the last commit failed, until a commit succeeds (reported by `/health`).
        var failure: String?
        /// The last sequence number and wall-clock time of recent commits, oldest first (for the projector lag).
        var commits: [(seq: UInt64, time: Double)] = []
    }

    /// Largest number of events drained into one transaction.
    public static let maximumBatchEvents = 200_000

    private let log: EventLog
    private let queue = Mutex(Queue())
    private let wakeUp = NSCondition()
    private let finished = DispatchSemaphore(value: 0)
    private let logger: Logger
    /// The last committed sequence number.
    public let head: SequenceWatch

    public init(log: EventLog, logger: Logger) throws {
        self.log = log
        self.logger = logger
        self.head = SequenceWatch(try log.head())
    }

    /// How long ago the first commit beyond `seq` was made: how far behind a reader at `seq` is, in seconds (0 when
    /// it is not behind).
    public func secondsSinceCommit(after seq: UInt64) -> Double {
        queue.withLock { queue in
            guard let first = queue.commits.first(where: { $0.seq > seq }) else { return 0 }
            return max(Date().timeIntervalSince1970 - first.time, 0)
        }
    }

    /// Why the log does not accept writes right now, if it does not.
    public var failure: String? { queue.withLock { $0.failure } }

    /// Starts the writer thread.
    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "tally-log-writer"
        thread.start()
    }

    /// Appends `events` durably; returns once their transaction has committed.
    public func append(_ events: [Event]) async throws -> AppendReceipt {
        if events.isEmpty { return AppendReceipt() }
        return try await enqueue(request: .events(events), stream: nil)
    }

    /// Appends the records the ingest decoder packed, durably; returns once their transaction has committed.
    public func append(_ packed: PackedEvents) async throws -> AppendReceipt {
        if packed.isEmpty { return AppendReceipt() }
        return try await enqueue(request: .packed(packed), stream: nil)
    }

    /// Appends events copied from a cluster partition's stream, each under its stream sequence, with the stream
    /// position of the last message, in one durable transaction of their own
    /// (``EventLog/append(copied:at:streamPosition:)``); returns once it has committed.
    public func append(
        copied events: [Event], at positions: [UInt64], streamPosition: UInt64
    ) async throws
        -> AppendReceipt
    {
        try await enqueue(request: .events(events), stream: nil, copied: (positions, streamPosition))
    }

    /// Appends the events `stream` emits in one durable transaction of their own, without holding them in
    /// memory (M2); returns once it has committed.
    public func append(stream: @escaping EventStream) async throws -> AppendReceipt {
        try await enqueue(request: .events([]), stream: stream)
    }

    /// Runs `job` on the writer's thread between two commits: nothing is appended while it runs.
    public func exclusively(_ job: @escaping @Sendable () throws -> Void) async throws {
        _ = try await enqueue(request: .events([]), stream: nil, job: job)
    }

    private func enqueue(
        request: AppendRequest, stream: EventStream?, job: (@Sendable () throws -> Void)? = nil,
        copied: (positions: [UInt64], streamPosition: UInt64)? = nil
    ) async throws -> AppendReceipt {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = queue.withLock { queue -> Bool in
                guard !queue.stopping else { return false }
                queue.pending.append(
                    Pending(
                        request: request, stream: stream, job: job, copied: copied,
                        continuation: continuation))
                return true
            }
            guard accepted else {
                continuation.resume(throwing: AppendError.shuttingDown)
                return
            }
            wakeUp.lock()
            wakeUp.signal()
            wakeUp.unlock()
        }
    }

    /// Stops taking requests, commits everything already queued, and waits for the thread to end.
    public func stop() {
        let alreadyStopped = queue.withLock { queue -> Bool in
            defer { queue.stopping = true }
            return queue.stopping
        }
        wakeUp.lock()
        wakeUp.signal()
        wakeUp.unlock()
        if !alreadyStopped { finished.wait() }
    }

    private func nextBatch() -> [Pending]? {
        wakeUp.lock()
        defer { wakeUp.unlock() }
        while true {
            let batch = queue.withLock { queue -> [Pending]? in
                guard let first = queue.pending.first else { return queue.stopping ? nil : [] }
                // Whole requests only; at least one, however large; a stream, a job or a copied batch alone.
                func alone(_ pending: Pending) -> Bool {
                    pending.stream != nil || pending.job != nil || pending.copied != nil
                }
                var count = first.request.count
                var taken = 1
                while !alone(first), taken < queue.pending.count, !alone(queue.pending[taken]) {
                    let next = queue.pending[taken].request.count
                    guard count + next <= Self.maximumBatchEvents else { break }
                    count += next
                    taken += 1
                }
                defer { queue.pending.removeFirst(taken) }
                return Array(queue.pending.prefix(taken))
            }
            guard let batch else { return nil }
            if !batch.isEmpty { return batch }
            wakeUp.wait()
        }
    }

    /// Counts a committed batch's events by type for the metrics.
    private func count(_ batch: [Pending], _ receipts: [AppendReceipt]) {
        var events = 0
        for (request, receipt) in zip(batch, receipts) {
            events += receipt.accepted
            guard request.stream == nil else {
                TallyMetrics.accepted[.pointsSet]?.increment(by: Int64(receipt.accepted))
                continue
            }
            var byType: [EventType: Int] = [:]
            switch request.request {
            case .events(let events):
                for index in events.indices { byType[events[index].type, default: 0] += 1 }  // no copies
            case .packed(let packed):
                for entry in packed.entries { byType[entry.type, default: 0] += 1 }
            }
            for (type, total) in byType {
                let duplicates = receipt.duplicatesByType[type] ?? 0
                if total > duplicates { TallyMetrics.accepted[type]?.increment(by: Int64(total - duplicates)) }
                if duplicates > 0 { TallyMetrics.duplicated[type]?.increment(by: Int64(duplicates)) }
            }
        }
        TallyMetrics.batchEvents.record(events)
    }

    private func run() {
        while let batch = nextBatch() {
            if let job = batch[0].job {
                batch[0].continuation.resume(with: Result { try job() }.map { AppendReceipt() })
                continue
            }
            do {
                let started = DispatchTime.now().uptimeNanoseconds
                let receipts =
                    if let stream = batch[0].stream {
                        [try log.appendStream(stream)]
                    } else if let copied = batch[0].copied, case .events(let events) = batch[0].request {
                        [try log.append(copied: events, at: copied.positions, streamPosition: copied.streamPosition)]
                    } else {
                        try log.append(batch.map(\.request)) { FaultInjection.point("writer") }
                    }
                TallyMetrics.commitDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                count(batch, receipts)
                let last = receipts.compactMap(\.lastSeq).max()
                queue.withLock { queue in
                    queue.failure = nil
                    if let last {
                        queue.commits.append((last, Date().timeIntervalSince1970))
                        if queue.commits.count > 4096 { queue.commits.removeFirst(1024) }
                    }
                }
                if let last = receipts.compactMap(\.lastSeq).max() { head.advance(to: last) }
                for (request, receipt) in zip(batch, receipts) { request.continuation.resume(returning: receipt) }
            } catch {
                let failure: AppendError
                if let error = error as? LMDBError, error.isOutOfSpace {
                    failure = .outOfSpace(error.description)
                } else {
                    failure = .storage("\(error)")
                }
                queue.withLock { $0.failure = failure.description }
                logger.error("event log commit failed", metadata: ["tally.error": "\(error)"])
                for request in batch { request.continuation.resume(throwing: failure) }
            }
        }
        finished.signal()
    }
}
