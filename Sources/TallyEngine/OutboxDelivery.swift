import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization
import TallyAPI
import TallyCore
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
    private let writer: LogWriter
    private let log: EventLog
    private let configuration: Configuration
    private let logger: Logger
    private let http: HTTPClient
    private let blocking: BlockingWork
    /// The rules the live projections fold with (already parsed): where `{{trigger.name}}` comes from.
    private let rulesInForce: @Sendable () -> RuleSet
    /// The sequence number of the last delivery outcome event in the log; nil until read at start.
    private let barrier = Mutex<UInt64?>(nil)

    /// Entries delivered concurrently.
    static let concurrency = 16
    /// Longest wait honoured from a `Retry-After` header: a day.
    static let longestRetryAfter: Int64 = 86_400_000

    init(
        projections: LiveProjections, projected: SequenceWatch, writer: LogWriter, log: EventLog,
        configuration: Configuration, blocking: BlockingWork, rulesInForce: @escaping @Sendable () -> RuleSet,
        logger: Logger
    ) {
        self.blocking = blocking
        self.rulesInForce = rulesInForce
        self.projections = projections
        self.projected = projected
        self.writer = writer
        self.log = log
        self.configuration = configuration
        self.logger = logger
        self.http = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    /// Waits until the live projections have folded every delivery outcome in the log; false when cancelled or
    /// after `timeout`.
    private func caughtUp(timeout: Duration) async -> Bool {
        var needed = barrier.withLock { $0 }
        if needed == nil {
            do {
                let last = try await blocking.run { try self.log.lastDeliveryOutcome() }
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

    /// Keys being attempted, and keys whose outcome was appended but not folded yet (key → the outcome's
    /// sequence number): the projections still show them due, so they are not read from there meanwhile. Keys
    /// compare as bytes, as the outbox table does (they hold contact ids).
    private struct Window {
        var inFlight: Set<ByteString> = []
        var unfolded: [ByteString: UInt64] = [:]
    }

    private let window = Mutex(Window())

    /// Delivers due entries until the task is cancelled: up to ``concurrency`` at a time, each slot taken again as
    /// soon as its delivery is recorded, so a slow receiver holds up only its own entries.
    func run() async {
        // After a start on lost projections, the refold must pass every outcome in the log before the outbox is
        // read: until then, a delivered entry is pending there.
        while !Task.isCancelled, !(await caughtUp(timeout: .seconds(1))) {}
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let seen = projected.value
                let (busy, skip) = window.withLock { window in
                    window.unfolded = window.unfolded.filter { $0.value > seen }
                    return (window.inFlight.count, window.inFlight.union(window.unfolded.keys))
                }
                var keys: [String] = []
                var nextDue: Int64?
                if busy < Self.concurrency {
                    do {
                        (keys, nextDue) = try await blocking.run {
                            try self.projections.read { txn in
                                let due = try txn.dueOutboxKeys(
                                    now: wallClockMillis(), limit: Self.concurrency - busy + skip.count)
                                return (
                                    Array(
                                        due.filter { !skip.contains(ByteString($0)) }.prefix(Self.concurrency - busy)),
                                    try txn.nextDueAt()
                                )
                            }
                        }
                    } catch {
                        logger.error("outbox read failed", metadata: ["tally.error": "\(error)"])
                        try? await Task.sleep(for: .seconds(1))
                        continue
                    }
                }
                for key in keys {
                    window.withLock { _ = $0.inFlight.insert(ByteString(key)) }
                    group.addTask { await self.deliver(key) }
                }
                guard keys.isEmpty else { continue }
                // Nothing to start: wait for the projector's next commit (new entries, folded outcomes), at most
                // 10 ms while deliveries are in flight or unfolded, else until the next entry is due (at most 1 s).
                let now = wallClockMillis()
                let waiting = busy > 0 || !skip.isEmpty
                let wait = waiting ? 10 : nextDue.map { $0 <= now ? 1 : min($0 - now, 1000) } ?? 1000
                _ = await projected.wait(forAtLeast: seen + 1, timeout: .milliseconds(wait))
            }
        }
    }

    /// One entry: an attempt, then its outcome appended to the log; the key leaves the window's in-flight set for
    /// its unfolded set in one step.
    private func deliver(_ key: String) async {
        var seq: UInt64?
        if let attempt = await attempt(key) {
            // Shutting down cancels the requests in flight: those failures are not the receivers', so they are not
            // recorded (the entry stays due); deliveries are.
            if !(Task.isCancelled && attempt.error != nil) { seq = await record(attempt) }
        }
        window.withLock { window in
            window.inFlight.remove(ByteString(key))
            if let seq { window.unfolded[ByteString(key)] = seq }
        }
    }

    func shutdown() async {
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
        let receipt: AppendReceipt
        do {
            receipt = try await writer.append([event])
        } catch let error as AppendError {
            throw EngineError(error)
        }
        appended(receipt.lastSeq)
        logger.info("outbox entry retried by hand", metadata: ["tally.key": "\(key)"])
        // So that a listing right after the answer shows the entry pending.
        _ = await projected.wait(forAtLeast: receipt.lastSeq ?? 0, timeout: .seconds(10))
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
            seq = try await writer.append([attempt.event]).lastSeq
            appended(seq)
        } catch {
            // The outcome could not be appended (a full disk): the entry stays due. Pause before it is sent again,
            // so that the receiver is not flooded with the same message while the log cannot write.
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
