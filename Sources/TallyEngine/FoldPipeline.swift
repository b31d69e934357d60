import Dispatch
import Foundation
import Synchronization
import TallyCore
import TallyStore

/// Folds a long stretch of the log on two threads: the caller's thread reads and folds the next batch while a
/// writer thread writes and commits the one before. A rebuild spends about as long on each half
/// (`performance.md`), so on two cores the halves overlap.
///
/// Only plain batches go ahead — contact events, delivery outcomes and erasure records, with no pass under way. A
/// merge, a rules switch, a clock event or a pass (which read what the batches before them wrote) wait until the
/// writer has committed everything, and are folded by ``ProjectionFolder/step(through:size:)``.
///
/// A batch folded ahead takes the contacts and sessions of the batches still being written from those batches,
/// everything else from the committed store, so it folds what a batch-by-batch fold gives: the same transactions,
/// committed in the same order.
///
/// A throwaway fold (a rebuild before its switch, the scratch fold of `verify`) can defer its contact records: the
/// plain batches then write the history, audit and the other tables, and the contacts and open hits they changed
/// wait in ``DeferredContacts`` until there are `deferring` of either, a step that reads the store comes, or the run
/// ends — so a hot contact is written once per flush instead of once per batch, and a flush writes in key order.
/// A flush for the table's size is written by the writer thread, like a batch, while the next batch is folded.
/// Such a store is consistent only between runs (and whenever a step runs): nothing else may read it meanwhile.
public final class FoldPipeline {
    /// Batches folded but not yet known committed, at most: one being written, one waiting for the writer.
    static let depth = 2
    /// The contact states a rebuild or a scratch fold keeps unwritten, at most (`performance.md`, "Issue 16, fifth
    /// pass"): 25,000 took the 10 M-event bench's rebuild (1 M contacts, states of 4 KB) to 273 MiB, past the 256 MiB
    /// row, for no gain at that size; 10,000 keeps most of the gain of smaller logs.
    public static let deferredContacts = 10_000

    private let folder: ProjectionFolder
    private let writer: BatchWriter
    /// What was handed to the writer, in log order, whose commit has not been taken in yet.
    private var writing: [WriterJob] = []
    /// The batches of ``writing``, in log order.
    private var batchesWriting: [FoldedBatch] {
        writing.compactMap { if case .batch(let batch) = $0 { batch } else { nil } }
    }
    /// At most how many contact states wait to be written; nil: none wait, every batch writes its contacts.
    private let deferring: Int?

    /// A pipeline over `folder`; with `deferring`, its plain batches leave their contact records to flushes of at
    /// most that many.
    public init(_ folder: ProjectionFolder, deferring: Int? = nil) {
        self.folder = folder
        self.deferring = deferring.map { max($0, 1) }
        writer = BatchWriter(store: folder.store)
    }

    deinit { writer.close() }

    /// Folds batches of up to `size` events through `limit` while `proceed` returns true, calling `progress` after
    /// each batch that committed (an error it throws ends the run). When it returns or throws, every batch it folded
    /// has committed or been dropped, and the folder is at the last one committed.
    public func run(
        through limit: UInt64 = .max, size: Int, while proceed: () -> Bool = { true },
        progress: () throws -> Void = {}
    ) throws {
        do {
            while proceed() {
                try takeCommitted(waiting: writing.count >= Self.depth, progress: progress)
                if let deferring, folder.deferred.count >= deferring, !writing.contains(where: \.isFlush) {
                    // Written by the writer after the batches before it, while this thread folds the next. A batch
                    // still being written takes its states into the table after the flush, as changes of what the
                    // flush writes (it folded them from the table's states, or from the store's).
                    if let flush = folder.takeDeferred(keeping: deferring / 4) {
                        writer.submit(.flush(flush))
                        writing.append(.flush(flush))
                    }
                }
                if writing.count >= Self.depth { continue }
                let batches = batchesWriting
                if let batch = try folder.foldAhead(
                    after: batches.last?.last ?? folder.checkpoint, through: limit, size: size, writing: batches,
                    defersContacts: deferring != nil)
                {
                    writer.submit(.batch(batch))
                    writing.append(.batch(batch))
                    continue
                }
                try takeAllCommitted(progress: progress)
                try folder.writeDeferred()  // a step reads the contacts as stored
                guard try folder.step(through: limit, size: size) else { break }
                try progress()
            }
            try takeAllCommitted(progress: progress)
            try folder.writeDeferred()
        } catch {
            try? takeAllCommitted(progress: progress)  // the first error is the one to report
            throw error
        }
    }

    /// Takes in the batches the writer has committed since the last call, waiting for one when `waiting`; throws the
    /// writer's error when a batch failed.
    private func takeCommitted(waiting: Bool, progress: () throws -> Void) throws {
        var wait = waiting
        while !writing.isEmpty, let result = writer.result(waiting: wait) {
            wait = false
            let job = writing.removeFirst()
            try result.get()
            try committed(job, progress: progress)
        }
    }

    /// Takes in a job the writer committed.
    private func committed(_ job: WriterJob, progress: () throws -> Void) throws {
        switch job {
        case .batch(let batch):
            folder.committed(batch)
            try progress()
        case .flush:
            folder.deferred.flushCommitted()
        }
    }

    /// Waits for the writer to finish every batch handed to it. After an error, the rest are dropped.
    private func takeAllCommitted(progress: () throws -> Void) throws {
        var failure: (any Error)?
        while !writing.isEmpty {
            let job = writing.removeFirst()
            do {
                try writer.result(waiting: true)?.get()
                try committed(job, progress: progress)  // the writer commits nothing after a failure
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }
}

extension ProjectionFolder {
    /// The batch after `done` folded ahead of the store, for a ``FoldPipeline`` whose writer holds `writing` (the
    /// batches after the checkpoint, in log order); nil when the next batch is not plain — a pass is under way, or it
    /// begins with a merge, a rules switch or a clock event — or there is nothing to fold.
    func foldAhead(
        after done: UInt64, through limit: UInt64, size: Int, writing: [FoldedBatch], defersContacts: Bool
    ) throws
        -> FoldedBatch?
    {
        guard done < limit, try !store.read({ try $0.anyPassPending() }) else { return nil }
        var events = try log.read(from: done + 1, limit: Int(min(UInt64(max(size, 1)), limit - done)))
        if let special = events.firstIndex(where: { $0.event.type.isMerge || $0.event.type.endsBatch }) {
            events.removeSubrange(special...)
        }
        guard !events.isEmpty else { return nil }
        // Aliases change only at merges, which the pipeline folds after the writer is done.
        let (origins, relays) = try resolveAliases(&events)
        var batch = FoldedBatch(
            done: done, events: events, origins: origins, relays: relays, rules: writing.last?.rulesAfter ?? rules)
        batch.defersContacts = defersContacts
        // The store is read after the writer's commits were taken in: a contact a batch still being written changed
        // is in `writing`, and any other is as committed.
        try store.read { txn in
            try load(
                into: &batch, alsoOutcomes: false,
                stored: { contact in
                    for earlier in writing.reversed() {
                        if let state = earlier.working.contacts[contact] { return state }
                    }
                    return try self.deferred.state(contact) ?? self.contactCache.value(contact)
                        ?? txn.contact(contact.string)
                },
                storedHit: { key in
                    for earlier in writing.reversed() {
                        if let hit = earlier.working.openHits[key] { return hit }
                    }
                    return try self.deferred.hit(key) ?? self.sessionCache.value(key) ?? txn.openHit(key)
                },
                prepare: { _, _ in }, absent: { _ in })  // no pass is under way
        }
        try fold(&batch)
        return batch
    }
}

/// What a ``FoldPipeline`` hands its writer: a folded batch, or a flush of the contact records the batches deferred.
private enum WriterJob: Sendable {
    case batch(FoldedBatch)
    case flush(DeferredFlush)

    var isFlush: Bool { if case .flush = self { true } else { false } }
}

/// The writer thread of a ``FoldPipeline``: writes and commits the batches handed to it, in order, each in a
/// transaction of its own, and reports each one's result in the same order. After a failure it writes nothing more
/// (the batches after it continue a checkpoint that was not reached).
private final class BatchWriter: Sendable {
    private struct Queue {
        var jobs: [WriterJob] = []
        var results: [Result<Void, any Error>] = []
    }

    private let queue = Mutex(Queue())
    /// Signalled once per job handed over, and once at close.
    private let submitted = DispatchSemaphore(value: 0)
    /// Signalled once per result.
    private let finished = DispatchSemaphore(value: 0)

    init(store: ProjectionStore) {
        let thread = Thread { [self] in run(store) }  // ends at close(), releasing `self`
        thread.name = "tally-fold-writer"
        thread.start()
    }

    private func run(_ store: ProjectionStore) {
        lowerFoldThreadPriority()
        var failed = false
        while true {
            submitted.wait()
            guard let job = queue.withLock({ $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }) else {
                return  // closed
            }
            let result: Result<Void, any Error>
            if failed {
                result = .failure(CorruptRecordError(table: "meta", message: "checkpoint moved under the projector"))
            } else {
                result = Result {
                    try store.update { txn in
                        switch job {
                        case .batch(let batch): try ProjectionFolder.write(batch, in: txn)
                        case .flush(let flush): try flush.write(in: txn)
                        }
                    }
                }
                if case .failure = result { failed = true }
            }
            queue.withLock { $0.results.append(result) }
            finished.signal()
        }
    }

    func submit(_ job: WriterJob) {
        queue.withLock { $0.jobs.append(job) }
        submitted.signal()
    }

    /// The next batch's result in order, waiting for it when `waiting`; nil when it is not ready.
    func result(waiting: Bool) -> Result<Void, any Error>? {
        if waiting {
            finished.wait()
        } else if finished.wait(timeout: .now()) == .timedOut {
            return nil
        }
        return queue.withLock { $0.results.removeFirst() }
    }

    /// Ends the thread once it has written what it was given.
    func close() {
        submitted.signal()  // wakes the thread to an empty queue
    }
}
