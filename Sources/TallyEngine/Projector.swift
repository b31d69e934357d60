import Foundation
public import Logging
import Synchronization
public import TallyCore
public import TallyStore

/// Follows the event log and folds it into the projections, one batch per transaction.
///
/// Each batch's new contact states and the checkpoint (its last sequence number) are written in one LMDB
/// transaction (A5): after a crash the projector resumes right after the last committed batch, so no event is
/// applied twice or skipped. Runs on a dedicated thread; the fold itself is ``Scorer``, pure.
public final class Projector: Sendable {
    /// Events folded per transaction.
    public static let batchSize = 10_000

    private let log: EventLog
    private let store: ProjectionStore
    private let scorer: Scorer
    private let logHead: SequenceWatch
    private let logger: Logger
    private let stopping = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)
    /// The last sequence number folded into the projections.
    public let projected: SequenceWatch

    public init(log: EventLog, store: ProjectionStore, scorer: Scorer, logHead: SequenceWatch, logger: Logger) throws {
        self.log = log
        self.store = store
        self.scorer = scorer
        self.logHead = logHead
        self.logger = logger
        self.projected = SequenceWatch(try store.checkpoint())
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "tally-projector"
        thread.start()
    }

    /// Finishes the batch in progress and ends the thread.
    public func stop() {
        let already = stopping.withLock { stopping in
            defer { stopping = true }
            return stopping
        }
        logHead.wakeAll()
        if !already { finished.wait() }
    }

    private func run() {
        while !stopping.withLock({ $0 }) {
            let done = projected.value
            if logHead.value <= done {
                logHead.blockingWait(beyond: done, timeout: 0.5)
                continue
            }
            do {
                if let last = try Self.foldBatch(log: log, store: store, scorer: scorer, after: done) {
                    projected.advance(to: last)
                }
            } catch {
                logger.error("projector batch failed; retrying", metadata: ["tally.error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
            }
        }
        finished.signal()
    }

    /// Folds up to ``batchSize`` events after `seq` into the store in one transaction; returns the new
    /// checkpoint, or nil when there was nothing to fold.
    public static func foldBatch(
        log: EventLog, store: ProjectionStore, scorer: Scorer, after seq: UInt64
    ) throws
        -> UInt64?
    {
        let events = try log.read(from: seq + 1, limit: batchSize)
        guard let last = events.last else { return nil }
        try store.update { txn in
            guard try txn.checkpoint() == seq else {
                throw CorruptRecordError(table: "meta", message: "checkpoint moved under the projector")
            }
            // Load what the batch touches; contacts absent from the store stay absent, so the fold sees them
            // as new (T2).
            var working = Projection()
            var loaded: Set<String> = []
            for logged in events {
                let event = logged.event
                if loaded.insert(event.contact).inserted, let state = try txn.contact(event.contact) {
                    working.contacts[event.contact] = state
                }
                if event.type == .urlHit, let session = event.session {
                    let key = SessionKey(contact: event.contact, session: session)
                    if working.openHits[key] == nil { working.openHits[key] = try txn.openHit(key) }
                }
            }
            for logged in events {
                let outcome = working.apply(logged.event, scorer: scorer)
                for effect in outcome.sideEffects {
                    if let entry = OutboxEntry(effect, firedSeq: logged.seq) { try txn.addOutboxEntry(entry) }
                }
            }
            for (contact, state) in working.contacts.sorted(by: { $0.key < $1.key }) {
                try txn.setContact(contact, state)
            }
            for (key, hit) in working.openHits { try txn.setOpenHit(key, hit) }
            try txn.setCheckpoint(last.seq)
        }
        return last.seq
    }
}
