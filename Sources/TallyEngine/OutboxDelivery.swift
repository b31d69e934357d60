import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import Synchronization
import TallyAPI
public import TallyCore
import TallyDelivery
public import TallyStore

/// Delivers the outbox (T6, T7): webhooks to the configured integrations and email through the SMTP relay.
///
/// At least once: an entry counts as delivered only once its `outbox.delivered` event is in the log, appended
/// after the receiver accepted it, so a crash in between sends it again, with the same `Idempotency-Key`
/// (webhooks) and `Message-ID` (email) for the receiver to drop. A failed attempt is retried after
/// `outbox.backoff`, doubling (and not before a webhook's `Retry-After`), until `outbox.attempts` attempts; a
/// permanent failure (``DeliveryError/Decision/park``) or the last attempt parks the entry as failed for an
/// operator to see and retry. Every outcome is an event in the log, which the projector folds into the outbox:
/// the delivery never writes the projections, and a delivered entry is never sent again, also after a rebuild,
/// the loss of the projections or a restored backup.
///
/// After a start it reads the outbox only once the projections have folded every outcome event in the log (the
/// last one's sequence number, from the log's `outcomes` index: the ``barrier``), and while running it keeps the
/// keys whose outcome it appended but the projector has not folded yet out of what it reads, so that an entry
/// whose outcome the projections do not show yet is never sent again. A retry by hand waits for the barrier,
/// which every outcome appended raises.
public final class OutboxDelivery: Sendable {
    private let projections: LiveProjections
    private let projected: SequenceWatch
    private let outcomes: OutcomeLog
    private let configuration: Configuration
    private let logger: Logger
    private let http: HTTPClient
    private let blocking: BlockingWork
    /// The rules the live projections fold with (already parsed): where `{{trigger.name}}` comes from.
    private let rulesInForce: @Sendable () -> RuleSet
    /// The sequence number of the last delivery outcome event in the log; nil until read at start.
    private let barrier = Mutex<UInt64?>(nil)

    /// Longest wait honoured from a `Retry-After` header: a day.
    static let longestRetryAfter: Int64 = 86_400_000

    /// A delivery of the outbox of `projections`, which the projector behind `projected` folds from the log that
    /// `outcomes` appends to.
    public init(
        projections: LiveProjections, projected: SequenceWatch, outcomes: OutcomeLog, configuration: Configuration,
        blocking: BlockingWork, rulesInForce: @escaping @Sendable () -> RuleSet, logger: Logger
    ) {
        self.blocking = blocking
        self.rulesInForce = rulesInForce
        self.projections = projections
        self.projected = projected
        self.outcomes = outcomes
        self.configuration = configuration
        self.logger = logger
        // Integrations whose URLs differ only in their path share the client's connections to their host: the pool
        // holds every lane's slots, so that one that hangs cannot take the connections of another.
        var client = HTTPClient.Configuration()
        let receivers = Set(configuration.integrations.values.map(\.url)).count
        client.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(
            8, receivers * configuration.outbox.concurrency)
        // A connection refused fails the attempt at once, for the outbox's backoff to retry: the client's own retries
        // would hold the request (and its lane's slot) until the connect timeout.
        client.connectionPool.retryConnectionEstablishment = false
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: client)
    }

    /// Waits until the live projections have folded every delivery outcome in the log; false when cancelled or
    /// after `timeout`.
    private func caughtUp(timeout: Duration) async -> Bool {
        var needed = barrier.withLock { $0 }
        if needed == nil {
            do {
                let last = try await outcomes.lastOutcome()
                needed = barrier.withLock { barrier in
                    barrier = max(barrier ?? 0, last)
                    return barrier
                }
            } catch {
                logger.error("outbox read failed", metadata: ["tally.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                return false
            }
        }
        return await projected.wait(forAtLeast: needed ?? .max, timeout: timeout)
    }

    /// Raises the barrier to an outcome just appended.
    private func appended(_ seq: UInt64?) {
        guard let seq else { return }
        barrier.withLock { $0 = max($0 ?? 0, seq) }
    }

    /// A receiver's lane: its entries read from the outbox and waiting for a slot, its deliveries in flight (at
    /// most `outbox.concurrency`), and the time before which it gets no request (a `Retry-After` it answered).
    private struct Lane {
        var queue: ArraySlice<String> = []
        var active = 0
        var pausedUntil: Int64 = .min
    }

    /// What the delivery holds in memory. Keys compare as bytes, as the outbox table does (they hold contact ids).
    private struct Window {
        /// Keys being attempted.
        var inFlight: Set<ByteString> = []
        /// Keys whose outcome was appended but not folded yet (key → the outcome's sequence number): the
        /// projections still show them due, so they are not read from there meanwhile.
        var unfolded: [ByteString: UInt64] = [:]
        /// Keys in a lane's queue.
        var queued: Set<ByteString> = []
        /// The lane of each due key met (an entry's receiver never changes), so that a pass decodes an entry once.
        var lanes: [ByteString: String] = [:]
        var receivers: [String: Lane] = [:]
        /// Set by ``stop(_:within:)``: no entry is taken any more, the attempts in flight finish.
        var draining = false
    }

    private let window = Mutex(Window())
    /// Attempts between reading their entry and appending its outcome, and erasures under way (I8).
    private let attempts = Mutex(Attempts())

    private struct Attempts {
        var inFlight = 0
        var erasures = 0
    }

    /// Runs `body` — an erasure's removal of a contact (I8) — once the attempts in flight have appended their
    /// outcomes (the erasure then removes them with the contact's other events), and holds new attempts back until
    /// it returns: no outcome naming an erased contact is appended after its erasure.
    public func withoutAttempts<T>(_ body: () async throws -> T) async throws -> T {
        attempts.withLock { $0.erasures += 1 }
        defer { attempts.withLock { $0.erasures -= 1 } }
        while attempts.withLock({ $0.inFlight }) > 0 { try await Task.sleep(for: .milliseconds(5)) }
        return try await body()
    }

    /// Waits until no erasure holds attempts back, and counts one more in flight.
    private func beginAttempt() async {
        while !attempts.withLock({ attempts in
            guard attempts.erasures == 0 else { return false }
            attempts.inFlight += 1
            return true
        }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
    /// Rung by each commit of the projector (new entries, folded outcomes) and each worker that runs out of
    /// entries: the loop reads the outbox again.
    private let bell = SequenceWatch(0)

    private func ring() { bell.advance(to: bell.value &+ 1) }

    /// The receiver an entry goes to, which names its lane: its integration's URL, or the SMTP relay.
    func receiver(of entry: OutboxEntry) -> String {
        switch entry.kind {
        case .integrationPush(let name):
            configuration.integrations[name].map { "webhook \($0.url)" } ?? "unconfigured integrations"
        case .emailSend, .emailSendToUser: "smtp \(configuration.smtp.host):\(configuration.smtp.port)"
        case nil: "none"
        }
    }

    /// Every lane an entry can go to: a pass stops reading once all of them are full.
    private var everyReceiver: Set<String> {
        var receivers = Set(configuration.integrations.values.map { "webhook \($0.url)" })
        receivers.insert("smtp \(configuration.smtp.host):\(configuration.smtp.port)")
        receivers.insert("unconfigured integrations")
        return receivers
    }

    /// Entries a lane holds read ahead of its slots, so that its workers go on without a pass per delivery.
    private var queueLength: Int { max(64, 4 * configuration.outbox.concurrency) }

    /// Delivers due entries until the task is cancelled. Each receiver has a lane of its own: up to
    /// `outbox.concurrency` deliveries in flight, each slot a worker that takes the lane's next entry as soon as the
    /// previous one's outcome is appended, so a receiver that hangs holds only its own slots. A pass reads the
    /// entries due now into the lanes' queues; it runs when the projector commits (new entries, folded outcomes),
    /// when a worker runs out of entries, and when the next entry falls due or a lane's pause ends, whichever
    /// comes first: no polling.
    public func run() async {
        // After a start on lost projections, the refold must pass every outcome in the log before the outbox is
        // read: until then, a delivered entry is pending there.
        while !Task.isCancelled, !window.withLock({ $0.draining }), !(await caughtUp(timeout: .seconds(1))) {}
        let concurrency = configuration.outbox.concurrency
        let everyReceiver = self.everyReceiver
        // Read before the first pass: every commit after it rings, also one before the forwarding task first runs.
        let folded = projected.value
        let forwarding = Task {
            var seen = folded
            while !Task.isCancelled {
                guard await self.projected.wait(forAtLeast: seen &+ 1, timeout: .seconds(3600)) else { continue }
                seen = self.projected.value
                self.ring()
            }
        }
        defer { forwarding.cancel() }
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled, !window.withLock({ $0.draining }) {
                let ticket = bell.value &+ 1
                let now = wallClockMillis()
                let seen = projected.value
                let pass: Pass
                do {
                    pass = try await readPass(now: now, seen: seen, everyReceiver: everyReceiver)
                } catch {
                    logger.error("outbox read failed", metadata: ["tally.error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                let (workers, pausedUntil) = window.withLock { window in
                    for (key, lane) in pass.lanes { window.lanes[key] = lane }
                    if window.lanes.count > 1 << 20 { window.lanes = [:] }  // keys a rebuild removed; read again
                    for (receiver, keys) in pass.read {
                        window.receivers[receiver, default: Lane()].queue.append(contentsOf: keys)
                        for key in keys { window.queued.insert(ByteString(key)) }
                    }
                    var workers: [String] = []
                    var pausedUntil: Int64?
                    for (receiver, lane) in window.receivers {
                        if lane.pausedUntil > now {
                            pausedUntil = min(pausedUntil ?? .max, lane.pausedUntil)
                            continue
                        }
                        let start = min(concurrency - lane.active, lane.queue.count)
                        guard start > 0 else { continue }
                        window.receivers[receiver]?.active += start
                        workers += repeatElement(receiver, count: start)
                    }
                    return (workers, pausedUntil)
                }
                for receiver in workers { group.addTask { await self.work(receiver) } }
                // Until the next entry falls due or a lane's pause ends (at most a minute), unless rung first.
                let wakeAt = [pass.nextDue, pausedUntil].compactMap { $0 }.min()
                let wait = wakeAt.map { min(max($0 - wallClockMillis(), 1), 60_000) } ?? 60_000
                _ = await bell.wait(forAtLeast: ticket, timeout: .milliseconds(wait))
            }
        }
    }

    /// What a pass read: due keys by receiver, the receivers of keys met for the first time, and when the next
    /// entry falls due.
    private struct Pass: Sendable {
        var read: [String: [String]] = [:]
        var lanes: [ByteString: String] = [:]
        var nextDue: Int64?
    }

    /// A pass over the outbox on the blocking pool, with what the window holds now.
    private func readPass(now: Int64, seen: UInt64, everyReceiver: Set<String>) async throws -> Pass {
        let roomy = configuration.outbox.concurrency + queueLength
        let (skip, room, known) = window.withLock { window in
            window.unfolded = window.unfolded.filter { $0.value > seen }
            let room = window.receivers.mapValues { lane in
                lane.pausedUntil > now ? 0 : roomy - lane.active - lane.queue.count
            }
            return (window.inFlight.union(window.unfolded.keys).union(window.queued), room, window.lanes)
        }
        return try await blocking.run {
            try self.projections.read { txn in
                try self.pass(
                    txn, now: now, skip: skip, room: room, known: known, everyReceiver: everyReceiver, default: roomy)
            }
        }
    }

    /// Reads the keys due now, soonest first, into the lanes with room (`room`, else `default`), skipping the keys
    /// in flight, queued or not folded yet; stops when every receiver's lane is full.
    private func pass(
        _ txn: ProjectionTransaction, now: Int64, skip: Set<ByteString>, room: [String: Int],
        known: [ByteString: String], everyReceiver: Set<String>, default: Int
    ) throws -> Pass {
        var result = Pass()
        var room = room
        var full = Set(room.filter { $0.value <= 0 }.keys)
        try txn.forEachDueOutboxKey(now: now) { key in
            let bytes = ByteString(key)
            guard !skip.contains(bytes) else { return true }
            var receiver = known[bytes]
            if receiver == nil {
                guard let entry = try txn.outboxEntry(key), entry.state == .pending else { return true }
                receiver = self.receiver(of: entry)
                result.lanes[bytes] = receiver
            }
            guard let receiver, !full.contains(receiver) else { return true }
            let left = room[receiver, default: `default`] - 1
            room[receiver] = left
            result.read[receiver, default: []].append(key)
            if left <= 0 { full.insert(receiver) }
            return !everyReceiver.isSubset(of: full)
        }
        result.nextDue = try txn.nextDueAt(after: now)
        return result
    }

    /// One slot of a lane: delivers the lane's queued entries one after the other, until the queue is empty or the
    /// lane paused; then rings, so that a pass reads more.
    private func work(_ receiver: String) async {
        while !Task.isCancelled {
            let key = window.withLock { window -> String? in
                guard var lane = window.receivers[receiver] else { return nil }
                guard !window.draining, lane.pausedUntil <= wallClockMillis(), let key = lane.queue.popFirst() else {
                    lane.active -= 1
                    window.receivers[receiver] = lane
                    return nil
                }
                window.receivers[receiver] = lane
                window.queued.remove(ByteString(key))
                window.inFlight.insert(ByteString(key))
                return key
            }
            guard let key else { break }
            await deliver(key, receiver: receiver)
        }
        ring()
    }

    /// One entry: an attempt, then its outcome appended to the log; the key leaves the window's in-flight set for
    /// its unfolded set in one step. A `Retry-After` pauses the whole lane: the receiver asked for it.
    private func deliver(_ key: String, receiver: String) async {
        await beginAttempt()
        defer { attempts.withLock { $0.inFlight -= 1 } }
        var seq: UInt64?
        let attempt = await attempt(key)
        if case .retry(let notBefore?) = attempt?.error?.decision {
            // Paused at once, before the outcome is appended: nothing else goes to the receiver meanwhile.
            let until = min(notBefore, wallClockMillis() + Self.longestRetryAfter)
            window.withLock { window in
                if var lane = window.receivers[receiver] {
                    lane.pausedUntil = max(lane.pausedUntil, until)
                    window.receivers[receiver] = lane
                }
            }
        }
        if let attempt {
            // Shutting down cancels the requests in flight: those failures are not the receivers', so they are not
            // recorded (the entry stays due); deliveries are.
            if !(Task.isCancelled && attempt.error != nil) { seq = await record(attempt) }
        }
        window.withLock { window in
            let bytes = ByteString(key)
            window.inFlight.remove(bytes)
            if let seq { window.unfolded[bytes] = seq }
            if attempt?.event.type != .outboxAttemptFailed { window.lanes[bytes] = nil }  // no longer due
        }
    }

    /// Stops a ``run()`` in `running`: no entry is taken any more, and the attempts in flight have `within` to
    /// finish and append their outcomes (a receiver that took a message then has its outcome in the log, and is not
    /// sent it again by whoever delivers next); then the rest are cancelled, unrecorded. Shuts the HTTP client down.
    public func stop(_ running: Task<Void, Never>, within: Duration) async {
        window.withLock { $0.draining = true }
        ring()
        let deadline = Task {
            try? await Task.sleep(for: within)
            running.cancel()
        }
        await running.value
        deadline.cancel()
        try? await http.shutdown()
    }

    /// An engine that never ran (start-up failed after it was built) still shuts its HTTP client down.
    deinit { try? http.syncShutdown() }

    /// Puts an entry back in the queue, due now, with its attempts reset (a delivered entry stays delivered): an
    /// `outbox.retried` event in the log. Returns the entry as the fold makes it.
    /// Throws ``EngineError``: not found for an unknown key, a conflict for a delivered entry or one the rules in
    /// force do not fire (its outcomes are from before a rebuild), unavailable while the projections have not
    /// folded the log's delivery outcomes yet or the log cannot be written.
    public func retry(key: String) async throws -> OutboxEntry {
        guard await caughtUp(timeout: .seconds(10)) else {
            throw EngineError(
                .unavailable,
                "the projections have not folded the outbox's delivery outcomes yet; retry \"\(key)\" in a moment")
        }
        guard let entry = try await blocking.run({ try self.projections.read { txn in try txn.outboxEntry(key) } })
        else {
            throw EngineError(.notFound, "no outbox entry \"\(key)\"")
        }
        guard entry.state != .delivered else {
            throw EngineError(.conflict, "\"\(key)\" was delivered already and is never sent again")
        }
        guard entry.kind != nil else {
            throw EngineError(
                .conflict,
                "\"\(key)\" is not fired under the rules in force (its outcomes are from before a rebuild): nothing to "
                    + "send")
        }
        let event = Event(type: .outboxRetried, contact: entry.contact, at: wallClockMillis(), item: key)
        let seq: UInt64?
        do {
            seq = try await outcomes.append([event])
        } catch let error as AppendError {
            throw EngineError(error)
        }
        appended(seq)
        logger.info("outbox entry retried by hand", metadata: ["tally.key": "\(key)"])
        // So that a listing right after the answer shows the entry pending.
        _ = await projected.wait(forAtLeast: seq ?? 0, timeout: .seconds(10))
        return entry.applying(event)
    }

    /// One attempt's entry, the outcome event to append, and the error of a failed attempt.
    struct Attempt: Sendable {
        var entry: OutboxEntry
        var event: Event
        var error: DeliveryError?
    }

    private func attempt(_ key: String) async -> Attempt? {
        let loaded: (OutboxEntry, ContactState?)?
        do {
            loaded = try await blocking.run {
                try self.projections.read { txn in
                    guard let entry = try txn.outboxEntry(key), entry.state == .pending else { return nil }
                    return (entry, try txn.contact(entry.contact))
                }
            }
        } catch {
            logger.error("outbox read failed", metadata: ["tally.key": "\(key)", "tally.error": "\(error)"])
            return nil
        }
        guard let (entry, contact) = loaded else { return nil }
        let failure: DeliveryError?
        do throws(DeliveryError) {
            try await send(entry, contact: contact ?? ContactState())
            failure = nil
        } catch {
            failure = error
        }
        return Attempt(entry: entry, event: outcome(of: entry, failure, now: wallClockMillis()), error: failure)
    }

    /// The outcome event of an attempt: delivered, failed with the next due time, or parked.
    func outcome(of entry: OutboxEntry, _ failure: DeliveryError?, now: Int64) -> Event {
        guard let failure else {
            return Event(type: .outboxDelivered, contact: entry.contact, at: now, item: entry.key)
        }
        let attempts = entry.attempts + 1
        guard case .retry(let notBefore) = failure.decision, attempts < configuration.outbox.attempts else {
            return Event(
                type: .outboxParked, contact: entry.contact, at: now, item: entry.key, reason: failure.description)
        }
        let backoff = configuration.outbox.backoff << min(attempts - 1, 20)
        var due = now + backoff
        if let notBefore { due = max(due, min(notBefore, now + Self.longestRetryAfter)) }
        return Event(
            type: .outboxAttemptFailed, contact: entry.contact, at: now, item: entry.key, reason: failure.description,
            value: due)
    }

    /// Appends an attempt's outcome; its metrics and log line follow the commit, once. Returns the outcome's
    /// sequence number, or nil when the log could not take it.
    private func record(_ attempt: Attempt) async -> UInt64? {
        let entry = attempt.entry
        let seq: UInt64?
        do {
            seq = try await outcomes.append([attempt.event])
            appended(seq)
        } catch {
            // The outcome could not be appended (a full disk): the entry stays due. Pause before it is sent again,
            // so that the receiver is not flooded with the same message while the log cannot write. (Cancelled: the
            // delivery is stopping, and the entry's outcome may be in the log of record already.)
            guard !Task.isCancelled else { return nil }
            logger.error("outbox update failed", metadata: ["tally.key": "\(entry.key)", "tally.error": "\(error)"])
            try? await Task.sleep(for: .seconds(5))
            return nil
        }
        let metadata: Logger.Metadata = [
            "tally.key": "\(entry.key)", "tally.attempts": "\(entry.attempts + 1)",
            "tally.error": "\(attempt.error.map(\.description) ?? "")",
        ]
        switch attempt.event.type {
        case .outboxDelivered:
            TallyMetrics.outbox("delivered", kind: entry.kindName).increment()
        case .outboxAttemptFailed:
            TallyMetrics.outbox("failed_attempts", kind: entry.kindName).increment()
            logger.warning("outbox delivery failed; will retry", metadata: metadata)
        default:
            TallyMetrics.outbox("failed_attempts", kind: entry.kindName).increment()
            TallyMetrics.outbox("parked", kind: entry.kindName).increment()
            logger.error("outbox entry parked as failed", metadata: metadata)
        }
        return seq
    }

    private func send(_ entry: OutboxEntry, contact: ContactState) async throws(DeliveryError) {
        func beforeSending(_ reason: String, _ decision: DeliveryError.Decision) -> DeliveryError {
            DeliveryError(key: entry.key, target: "outbox", reason: reason, decision: decision)
        }
        switch entry.kind {
        case nil:
            throw beforeSending("not fired under the rules in force", .park)  // never due; for completeness
        case .integrationPush(let name):
            guard let integration = configuration.integrations[name] else {
                throw beforeSending("no integration \"\(name)\" in the configuration", .park)
            }
            try await postWebhook(entry, contact: contact, to: integration)
        case .emailSend(let template):
            guard let email = contact.email else {
                // A contact.update may still bring it: retried.
                throw beforeSending(
                    "contact \"\(entry.contact)\" has no email address (contact.update)", .retry(notBefore: nil))
            }
            try await sendEmail(entry, template: template, to: [email], contact: contact)
        case .emailSendToUser(let template, let toOwner, let to):
            var recipients = to
            if toOwner, let owner = contact.ownerEmail { recipients.insert(owner, at: 0) }
            guard !recipients.isEmpty else {
                throw beforeSending(
                    "contact \"\(entry.contact)\" has no owner email and no \"to\" addresses", .retry(notBefore: nil))
            }
            try await sendEmail(entry, template: template, to: recipients, contact: contact)
        }
    }

    private func postWebhook(
        _ entry: OutboxEntry, contact: ContactState, to integration: Configuration.Integration
    )
        async throws(DeliveryError)
    {
        let target = "webhook \(integration.url)"
        let body = WebhookPayload(
            key: entry.key, contact: ContactDocument(id: entry.contact, state: contact),
            trigger: .init(id: entry.trigger, event: entry.event), firedSeq: entry.firedSeq)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var request = HTTPClientRequest(url: integration.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: entry.key)
        request.headers.add(name: "User-Agent", value: "tally")
        for (name, value) in integration.headers { request.headers.add(name: name, value: value) }
        let response: HTTPClientResponse
        do {
            request.body = .bytes(ByteBuffer(bytes: try encoder.encode(body)))
            response = try await http.execute(request, timeout: .seconds(10))
            _ = try? await response.body.collect(upTo: 64 << 10)
        } catch {
            throw DeliveryError(key: entry.key, target: target, reason: "\(error)", decision: .retry(notBefore: nil))
        }
        let status = Int(response.status.code)
        guard !(200..<300).contains(status) else { return }
        var notBefore: Int64?
        if status == 429 || status == 503, let header = response.headers.first(name: "Retry-After") {
            notBefore = RetryAfter.notBefore(header, now: wallClockMillis())
        }
        var reason = "answered \(status)"
        if let notBefore { reason += ", retry after \(Timestamp.format(notBefore))" }
        throw DeliveryError(
            key: entry.key, target: target, code: status, reason: reason,
            decision: DeliveryError.webhookDecision(status: status, notBefore: notBefore))
    }

    private func sendEmail(
        _ entry: OutboxEntry, template: String, to recipients: [String], contact: ContactState
    )
        async throws(DeliveryError)
    {
        let smtp = configuration.smtp
        // E1: the template, read now (an edited template applies to the next email), over the contact's document.
        let context = EmailTemplateContext(
            contact: ContactDocument(id: entry.contact, state: contact), triggerID: entry.trigger,
            triggerName: rulesInForce().triggers.first { $0.id == entry.trigger }?.name ?? "")
        let message: EmailMessage
        do throws(EmailTemplateError) {
            message = try EmailComposer(configuration: configuration).message(
                key: entry.key, template: template, to: recipients, context: context)
        } catch {
            // Checked at publication and start; an edit since broke it. Parked for an operator: fix the template,
            // then `tally outbox retry`.
            throw DeliveryError(
                key: entry.key, target: "outbox", reason: error.description, decision: .park)
        }
        do {
            try await SMTPClient().send(message, via: SMTPRelay(host: smtp.host, port: smtp.port, from: smtp.from))
        } catch {
            throw DeliveryError(
                key: entry.key, target: "SMTP relay \(smtp.host):\(smtp.port)", code: error.code,
                reason: error.description,
                decision: error.isPermanent ? .park : .retry(notBefore: nil))
        }
    }

    /// A stable Message-ID local part for a key (FNV-1a 64, hex), so that a resent message is recognisable.
    static func messageID(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16) + "." + String(key.utf8.count)
    }
}

/// Where a delivery's outcome events go (T7), and how it learns the last one the log already holds: the daemon's
/// own log, or — on a cluster node — the partition's subject of the cluster's stream, which the node's copy of
/// the partition then brings into the local log its projector folds.
public struct OutcomeLog: Sendable {
    /// Appends events durably; returns the sequence number in the local log that the projector must have folded
    /// for them to show in the outbox (nil when nothing was appended).
    public var append: @Sendable (_ events: [Event]) async throws -> UInt64?
    /// The sequence number in the local log of the last delivery outcome of the log of record, once the local
    /// log holds every outcome the log of record had when it was called.
    public var lastOutcome: @Sendable () async throws -> UInt64

    public init(
        append: @escaping @Sendable (_ events: [Event]) async throws -> UInt64?,
        lastOutcome: @escaping @Sendable () async throws -> UInt64
    ) {
        self.append = append
        self.lastOutcome = lastOutcome
    }

    /// A single node's: its log, through its writer.
    public static func local(writer: LogWriter, log: EventLog, blocking: BlockingWork) -> OutcomeLog {
        OutcomeLog(
            append: { events in try await writer.append(events).lastSeq },
            lastOutcome: { try await blocking.run { try log.lastDeliveryOutcome() } })
    }
}
