import CGlibc
import Foundation
public import Logging
import Synchronization
public import TallyAPI
public import TallyCore
public import TallyStore

/// Follows the event log and folds it into the live projections, and carries out rebuilds (A4).
///
/// The fold is ``ProjectionFolder`` on a dedicated thread: each batch's state and its checkpoint are written in
/// one transaction (A5), so after a crash it resumes right after the last committed batch.
///
/// A rebuild is a `rebuild` event in the log. When the projector folds one (or finds at start one that its
/// store was not built for), a rebuild thread folds the whole log into a fresh environment, with the events
/// before the rebuild event under the version it names, while the live projections go on being served and
/// updated. Once the fresh fold has caught up with the log, the projector thread folds its last events, replaces
/// the live store and points `CURRENT` at the fresh environment; the old one is deleted. Nothing is carried
/// over: delivery outcomes are events in the log (T7), so the fresh fold's outbox knows every delivery. A crash
/// before the switch leaves the old store live, and the rebuild starts again.
public final class Projector: Sendable {
    private struct State {
        var folder: ProjectionFolder
        /// A rebuilt folder waiting to replace the live one.
        var handover: ProjectionFolder?
        /// The rebuild in progress or last finished.
        var progress: RebuildProgress?
        /// Numbers the rebuilds started; a rebuild thread whose number is no longer current stops (a newer
        /// rebuild event superseded it).
        var generation = 0
        var rebuilding = false
    }

    private let log: EventLog
    public let projections: LiveProjections
    private let directories: ProjectionDirectories
    private let sessionTimeout: Int64
    private let mapSize: Int
    private let durability: ProjectionDurability
    private let logHead: SequenceWatch
    private let logger: Logger
    /// The cluster partition the projections are for (K4); nil on a single node.
    public let home: PartitionHome?
    private let state: Mutex<State>
    private let stopping = Mutex(false)
    /// Work that must run on the projector's thread between two batches (an erasure, I8), in arrival order.
    /// A job given no folder is refused: the projector stopped first.
    private let exclusive = Mutex<[@Sendable (ProjectionFolder?) -> Void]>([])
    private let finished = DispatchSemaphore(value: 0)
    /// The last sequence number folded into the live projections.
    public let projected: SequenceWatch

    public init(
        log: EventLog, directories: ProjectionDirectories, sessionTimeout: Int64, mapSize: Int,
        durability: ProjectionDurability, logHead: SequenceWatch, home: PartitionHome? = nil, logger: Logger
    ) throws {
        self.log = log
        self.home = home
        self.directories = directories
        self.sessionTimeout = sessionTimeout
        self.mapSize = mapSize
        self.logHead = logHead
        self.logger = logger
        if durability == .log, !ProjectionDirectories.canTellBoots {
            logger.warning("no boot id to tell a system crash by: the projections sync every commit")
            self.durability = .commit
        } else {
            self.durability = durability
        }
        if try directories.projectionsMayBeTorn() {
            logger.warning(
                "the system stopped while the projections were not synced to disk: folding them again from the log")
            try directories.discardProjections()
        }
        try directories.removeStale()
        let store = try ProjectionStore(directory: try directories.current(), mapSize: mapSize)
        switch self.durability {
        case .log:
            try directories.markUnsynced()
            try store.environment.deferSync()
        case .commit:
            try store.environment.sync()  // what an earlier run left unsynced
            try directories.markSynced()
        }
        projections = LiveProjections(store)
        let folder = try ProjectionFolder(log: log, store: store, sessionTimeout: sessionTimeout, home: home)
        state = Mutex(State(folder: folder))
        projected = SequenceWatch(try folder.completed())
    }

    /// The rules version the live projections are folding with.
    public var rules: RulesState { state.withLock { $0.folder.rules } }

    /// The rebuild in progress or last finished, if any.
    public var rebuildProgress: RebuildProgress? { state.withLock { $0.progress } }

    /// Whether a rebuild is running.
    public var isRebuilding: Bool { state.withLock { $0.rebuilding } }

    public func start() throws {
        // A rebuild the store was not built for, whose event the live store has already folded: a crash
        // interrupted it; start it again. (One not folded yet starts when the projector folds it.)
        let folder = state.withLock { $0.folder }
        let built = try folder.store.read { txn in try txn.rebuildSeq() }
        if let pending = try log.rulesEvents().last(where: { $0.event.type == .rebuild }), pending.seq > built,
            pending.seq <= folder.checkpoint
        {
            startRebuild(pending)
        }
        let thread = Thread { [self] in run() }
        thread.name = "tally-projector"
        thread.start()
    }

    /// Finishes the batch in progress, stops a rebuild, and ends the thread.
    public func stop() {
        let already = stopping.withLock { stopping in
            defer { stopping = true }
            return stopping
        }
        state.withLock { $0.generation += 1 }
        logHead.wakeAll()
        if !already { finished.wait() }
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    /// Runs `body` with the live folder on the projector's thread, between two batches: nothing else folds or
    /// writes the projections meanwhile.
    public func exclusively<T: Sendable>(_ body: @escaping @Sendable (ProjectionFolder) throws -> T) async throws -> T {
        guard !isStopping else { throw EngineError(.unavailable, "Tally is stopping") }
        return try await withCheckedThrowingContinuation { continuation in
            exclusive.withLock { jobs in
                jobs.append { folder in
                    continuation.resume(
                        with: Result {
                            guard let folder else { throw EngineError(.unavailable, "Tally is stopping") }
                            return try body(folder)
                        })
                }
            }
            logHead.wakeAll()
        }
    }

    /// Takes the exclusive jobs waiting, in arrival order.
    private func takeJobs() -> [@Sendable (ProjectionFolder?) -> Void] {
        exclusive.withLock { jobs in
            defer { jobs = [] }
            return jobs
        }
    }

    /// How long the projector waits for a part batch to fill (seconds): a bound on the lag it adds.
    static let gatherDelay = 0.01
    /// Events in a batch that mark a stream of commits, which the projector gathers for `gatherDelay`.
    static let streamBatch: UInt64 = 4

    private func run() {
        lowerFoldThreadPriority()
        // When the last batch ended, and how many events it folded: what tells a stream of commits from single ones.
        var lastStep = ContinuousClock.now - .seconds(1)
        var lastBatch: UInt64 = 0
        var switched = false
        while !isStopping {
            if switched {
                // The replaced environment closed when the last iteration let go of its folder: the pages it and the
                // rebuild's transactions held go back to the system instead of staying in malloc's free lists.
                malloc_trim(0)
                switched = false
            }
            let (folder, handover) = state.withLock { state in
                defer { state.handover = nil }
                return (state.folder, state.handover)
            }
            if let handover {
                switchTo(handover, from: folder)
                switched = true
                continue
            }
            let jobs = takeJobs()
            if !jobs.isEmpty {
                for job in jobs { job(folder) }
                projected.advance(to: (try? folder.completed()) ?? folder.checkpoint)
                continue
            }
            let done = folder.checkpoint
            let passPending = (try? folder.store.read { try $0.anyPassPending() }) ?? false
            if logHead.value <= done, !passPending {
                logHead.blockingWait(beyond: done, timeout: 0.5)
                continue
            }
            let gather = Duration.seconds(Self.gatherDelay) - lastStep.duration(to: .now)
            if !passPending, lastBatch >= Self.streamBatch, logHead.value - done < UInt64(ProjectionFolder.batchSize),
                gather > .zero
            {
                // A part batch in a stream of commits (the last batch, less than `gatherDelay` ago, folded
                // `streamBatch` events or more): give the writer the rest of `gatherDelay` since that batch to make it
                // a full one, so that a stream of small commits costs at most one projection transaction (and its
                // fsyncs) per `gatherDelay`. A light load's commits (an idle daemon's event and the outcome of its
                // webhook) are folded as they land: no wait before their triggers' side effects (issue 16).
                let (seconds, attoseconds) = gather.components
                logHead.blockingWait(
                    beyond: done + UInt64(ProjectionFolder.batchSize) - 1,
                    timeout: Double(seconds) + Double(attoseconds) / 1e18)
            }
            defer {
                lastStep = .now
                lastBatch = folder.checkpoint &- done
            }
            do {
                let rebuildBefore = folder.foldedRebuild
                // Far behind, a projector that syncs each commit folds bigger batches (fewer syncs of the same hot
                // pages); one that does not sync gains nothing from them but a bigger transaction's dirty pages, which
                // LMDB holds in memory (and keeps on its free list).
                let behind =
                    durability == .commit && logHead.value - done > UInt64(4 * ProjectionFolder.catchUpBatchSize)
                let size = behind ? ProjectionFolder.catchUpBatchSize : ProjectionFolder.batchSize
                var reported = done
                var rebuildStarted = rebuildBefore
                func reportFolded() throws {
                    TallyMetrics.folded.increment(by: Int64(folder.checkpoint &- reported))
                    reported = folder.checkpoint
                    // A `rebuild` event just folded starts its rebuild before the fold is reported: whoever sees the
                    // projections caught up (`/health`) then sees the rebuild under way (`/v1/rebuild`).
                    if let rebuild = folder.foldedRebuild, rebuild != rebuildStarted,
                        let event = try log.event(at: rebuild)
                    {
                        rebuildStarted = rebuild
                        startRebuild(LoggedEvent(seq: rebuild, event: event))
                    }
                    projected.advance(to: try folder.completed())
                }
                if logHead.value - done > UInt64(2 * size) {
                    // More than two batches behind: fold the next while the last is written, until caught up, or
                    // until a rebuild event, an exclusive job, a rebuild's hand-over or the stop wants the thread.
                    try FoldPipeline(folder).run(
                        size: size,
                        while: {
                            !isStopping && folder.foldedRebuild == rebuildBefore
                                && !exclusive.withLock { !$0.isEmpty } && !state.withLock { $0.handover != nil }
                        },
                        progress: reportFolded)
                } else if try folder.step(size: size) {
                    try reportFolded()
                }
            } catch {
                logger.error("projector batch failed; retrying", metadata: ["tally.error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
            }
        }
        for job in takeJobs() { job(nil) }
        if durability == .log {
            do {
                try state.withLock { $0.folder }.store.environment.sync()
                try directories.markSynced()
            } catch {
                logger.error(
                    "the projections could not be synced at stop: after a system crash, the next start folds them again",
                    metadata: ["tally.error": "\(error)"])
            }
        }
        finished.signal()
    }

    /// Starts the rebuild the `rebuild` event asks for on a thread of its own, superseding one in progress.
    private func startRebuild(_ event: LoggedEvent) {
        let version = event.event.value ?? 0
        let progress = RebuildProgress(
            seq: event.seq, version: version, phase: .replaying, replayed: 0, total: logHead.value,
            startedAt: wallClockMillis(), requestedAt: event.event.at)
        let generation = state.withLock { state in
            state.progress = progress
            state.rebuilding = true
            state.handover = nil
            state.generation += 1
            return state.generation
        }
        logger.info("rebuild started", metadata: ["tally.seq": "\(event.seq)", "tally.rules_version": "\(version)"])
        let thread = Thread { [self] in rebuild(seq: event.seq, version: version, generation: generation) }
        thread.name = "tally-rebuild"
        thread.start()
    }

    /// The rebuild thread: folds the whole log into a fresh environment until it has caught up, then hands the
    /// folder to the projector thread for the switch. Stops (removing its environment) when superseded.
    private func rebuild(seq: UInt64, version: Int64, generation: Int) {
        lowerFoldThreadPriority()
        func isCurrent() -> Bool { state.withLock { $0.generation == generation } && !isStopping }
        let path: String
        do {
            path = try directories.fresh(forRebuildAt: seq)
        } catch {
            return failRebuild(seq, error, generation: generation)
        }
        do {
            let store = try ProjectionStore(directory: path, mapSize: mapSize)
            try store.environment.deferSync()  // a crash before the switch restarts the rebuild; synced at the switch
            let folder = try ProjectionFolder(
                log: log, emptyStore: store, sessionTimeout: sessionTimeout, version: version, until: seq, home: home)
            // Nothing reads the fresh environment before the switch: its contact records can wait (DeferredContacts).
            try FoldPipeline(folder, deferring: FoldPipeline.deferredContacts).run(
                size: ProjectionFolder.rebuildBatchSize, while: { isCurrent() && folder.checkpoint < logHead.value }
            ) {
                state.withLock { state in
                    guard state.generation == generation, var progress = state.progress else { return }
                    progress.replayed = folder.checkpoint
                    progress.total = max(progress.total, folder.checkpoint)
                    state.progress = progress
                }
            }
            let handedOver = state.withLock { state -> Bool in
                guard state.generation == generation, !isStopping else { return false }
                state.handover = folder
                state.progress?.phase = .switching
                return true
            }
            if handedOver {
                logger.info(
                    "rebuild replayed; switching",
                    metadata: ["tally.seq": "\(seq)", "tally.checkpoint": "\(folder.checkpoint)"])
                logHead.wakeAll()
            } else {
                try? FileManager.default.removeItem(atPath: path)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            failRebuild(seq, error, generation: generation)
        }
    }

    private func failRebuild(_ seq: UInt64, _ error: any Error, generation: Int) {
        logger.error("rebuild failed", metadata: ["tally.seq": "\(seq)", "tally.error": "\(error)"])
        state.withLock { state in
            guard state.generation == generation else { return }
            state.progress?.phase = .failed
            state.progress?.error = "\(error)"
            state.progress?.finishedAt = wallClockMillis()
            state.rebuilding = false
        }
    }

    /// I8: replaces the live projections with a copy that holds only live records, written afresh (no free page,
    /// no byte of a deleted one), on the projector's thread between two batches; the old directory is removed.
    public func compactProjections() async throws {
        try await exclusively { [self] live in
            let path = try directories.freshCopy()
            try live.store.environment.rewrite(to: path)
            let store = try ProjectionStore(directory: path, mapSize: mapSize)
            try store.environment.sync()  // on disk before CURRENT names it
            if durability == .log { try store.environment.deferSync() }
            let folder = try ProjectionFolder(log: log, store: store, sessionTimeout: sessionTimeout, home: home)
            projections.replace(with: store)
            try directories.makeCurrent(path)
            state.withLock { $0.folder = folder }
            try? FileManager.default.removeItem(atPath: live.store.environment.path)
        }
    }

    /// On the projector thread: folds the rebuilt store's last events, replaces the live store with it, and
    /// removes the old environment.
    private func switchTo(_ fresh: ProjectionFolder, from live: ProjectionFolder) {
        do {
            let target = max(logHead.value, live.checkpoint)
            while fresh.checkpoint < target, try fresh.step() {}
            while try fresh.store.read({ try $0.anyPassPending() }) { try fresh.step() }
            switch durability {
            case .log: try fresh.store.environment.sync()
            case .commit: try fresh.store.environment.syncAndMakeDurable()
            }
            projections.replace(with: fresh.store)
            try directories.makeCurrent(fresh.store.environment.path)
            state.withLock { state in
                state.folder = fresh
                state.progress?.phase = .done
                state.progress?.replayed = fresh.checkpoint
                state.progress?.finishedAt = wallClockMillis()
                state.rebuilding = false
            }
            projected.advance(to: fresh.checkpoint)
            try? FileManager.default.removeItem(atPath: live.store.environment.path)
            logger.info(
                "rebuild switched",
                metadata: [
                    "tally.checkpoint": "\(fresh.checkpoint)", "tally.rules_version": "\(fresh.rules.scorer.version)",
                ])
        } catch {
            try? FileManager.default.removeItem(atPath: fresh.store.environment.path)
            failRebuild(fresh.checkpoint, error, generation: state.withLock { $0.generation })
        }
    }
}

/// The nice value of the threads that fold (the projector's, a rebuild's, a fold pipeline's writer): the fold is
/// throughput work that catches up with what the cores leave, while ingest and reads are requests that wait. With
/// both cores busy, `scripts/bench 1000000` measured contact reads' p99 under ingest 14.3 → 9.2 ms and NDJSON ingest
/// 405 → 540 k events/s, for a projector catch-up after the NDJSON row of 16.1 → 20.7 s (`decisions.md`).
let foldThreadNice: Int32 = 10

/// Lowers the calling thread's priority to ``foldThreadNice``.
func lowerFoldThreadPriority() {
    _ = tally_set_thread_nice(foldThreadNice)  // a failure leaves the default priority, which folds the same
}
