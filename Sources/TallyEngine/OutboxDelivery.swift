import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import TallyAPI
import TallyCore
import TallyDelivery
public import TallyStore

/// Why an outbox entry could not be retried by hand.
public enum OutboxRetryError: Error, Sendable, CustomStringConvertible {
    case unknown(key: String)
    case alreadyDelivered(key: String)

    public var description: String {
        switch self {
        case .unknown(let key): "no outbox entry \"\(key)\""
        case .alreadyDelivered(let key): "\"\(key)\" was delivered already and is never sent again"
        }
    }
}

/// Delivers the outbox (T6, T7): webhooks to the configured integrations and email through the SMTP relay.
///
/// At least once: an entry is marked delivered only after its receiver accepted it, so a crash in between sends
/// it again, with the same `Idempotency-Key` (webhooks) and `Message-ID` (email) for the receiver to drop.
/// A failed attempt is retried after `outbox.backoff`, doubling, until `outbox.attempts` attempts, then parked
/// as failed for an operator to see and retry. A delivered entry is never sent again.
public final class OutboxDelivery: Sendable {
    private let projections: LiveProjections
    private let configuration: Configuration
    private let logger: Logger
    private let http: HTTPClient

    init(projections: LiveProjections, configuration: Configuration, logger: Logger) {
        self.projections = projections
        self.configuration = configuration
        self.logger = logger
        self.http = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    /// Delivers due entries until the task is cancelled.
    func run() async {
        while !Task.isCancelled {
            let keys: [String]
            do {
                keys = try projections.read { txn in try txn.dueOutboxKeys(now: wallClockMillis(), limit: 16) }
            } catch {
                logger.error("outbox read failed", metadata: ["tally.error": "\(error)"])
                keys = []
            }
            if keys.isEmpty {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            await withTaskGroup(of: Void.self) { group in
                for key in keys { group.addTask { await self.deliver(key) } }
            }
        }
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    /// An engine that never ran (start-up failed after it was built) still shuts its HTTP client down.
    deinit { try? http.syncShutdown() }

    /// Puts an entry back in the queue, due now, with its attempts reset (a delivered entry stays delivered).
    public func retry(key: String) async throws -> OutboxEntry {
        try await offThePool {
            try self.projections.update { txn in
                guard var entry = try txn.outboxEntry(key) else { throw OutboxRetryError.unknown(key: key) }
                guard entry.state != .delivered else { throw OutboxRetryError.alreadyDelivered(key: key) }
                entry.state = .pending
                entry.attempts = 0
                entry.dueAt = wallClockMillis()
                try txn.updateOutboxEntry(entry)
                return entry
            }
        }
    }

    private func deliver(_ key: String) async {
        let loaded: (OutboxEntry, ContactState?)?
        do {
            loaded = try projections.read { txn in
                guard let entry = try txn.outboxEntry(key), entry.state == .pending else { return nil }
                return (entry, try txn.contact(entry.contact))
            }
        } catch {
            logger.error("outbox read failed", metadata: ["tally.error": "\(error)"])
            return
        }
        guard let (entry, contact) = loaded else { return }
        let failure: String?
        do {
            try await attempt(entry, contact: contact ?? ContactState())
            failure = nil
        } catch {
            failure = "\(error)"
        }
        do {
            try await offThePool { try self.record(entry, failure: failure) }
        } catch {
            // The attempt could not be recorded (a full disk): the entry stays due. Pause before the loop sends it
            // again, so that the receiver is not flooded with the same message while the store cannot write.
            logger.error("outbox update failed", metadata: ["tally.key": "\(key)", "tally.error": "\(error)"])
            try? await Task.sleep(for: .seconds(5))
        }
    }

    /// Records an attempt's outcome on the stored entry.
    private func record(_ attempted: OutboxEntry, failure: String?) throws {
        try projections.update { txn in
            guard var entry = try txn.outboxEntry(attempted.key), entry.state == .pending else { return }
            entry.attempts += 1
            let now = wallClockMillis()
            if let failure {
                entry.lastError = failure
                TallyMetrics.outbox("failed_attempts", kind: entry.kindName).increment()
                if entry.attempts >= configuration.outbox.attempts {
                    entry.state = .failed
                    TallyMetrics.outbox("parked", kind: entry.kindName).increment()
                    logger.error(
                        "outbox entry parked as failed",
                        metadata: [
                            "tally.key": "\(entry.key)", "tally.attempts": "\(entry.attempts)",
                            "tally.error": "\(failure)",
                        ])
                } else {
                    let delay = configuration.outbox.backoff << min(entry.attempts - 1, 20)
                    entry.dueAt = now + delay
                    logger.warning(
                        "outbox delivery failed; will retry",
                        metadata: [
                            "tally.key": "\(entry.key)", "tally.attempts": "\(entry.attempts)",
                            "tally.error": "\(failure)",
                        ])
                }
            } else {
                entry.state = .delivered
                entry.deliveredAt = now
                TallyMetrics.outbox("delivered", kind: entry.kindName).increment()
                entry.lastError = nil
            }
            try txn.updateOutboxEntry(entry)
        }
    }

    struct DeliveryError: Error, CustomStringConvertible {
        var description: String
    }

    private func attempt(_ entry: OutboxEntry, contact: ContactState) async throws {
        switch entry.kind {
        case .integrationPush(let name):
            guard let integration = configuration.integrations[name] else {
                throw DeliveryError(description: "no integration \"\(name)\" in the configuration")
            }
            try await postWebhook(entry, contact: contact, to: integration)
        case .emailSend(let template):
            guard let email = contact.email else {
                throw DeliveryError(description: "contact \"\(entry.contact)\" has no email address (contact.update)")
            }
            try await sendEmail(entry, template: template, to: [email], contact: contact)
        case .emailSendToUser(let template, let toOwner, let to):
            var recipients = to
            if toOwner, let owner = contact.ownerEmail { recipients.insert(owner, at: 0) }
            guard !recipients.isEmpty else {
                throw DeliveryError(
                    description: "contact \"\(entry.contact)\" has no owner email and no \"to\" addresses")
            }
            try await sendEmail(entry, template: template, to: recipients, contact: contact)
        }
    }

    struct WebhookBody: Encodable {
        struct Trigger: Encodable {
            var id: String
            var event: String
        }
        var key: String
        var contact: ContactDocument
        var trigger: Trigger
        var fired_seq: UInt64
    }

    private func postWebhook(
        _ entry: OutboxEntry, contact: ContactState, to integration: Configuration.Integration
    )
        async throws
    {
        let body = WebhookBody(
            key: entry.key,
            contact: ContactDocument(id: entry.contact, state: contact),
            trigger: .init(id: entry.trigger, event: entry.event), fired_seq: entry.firedSeq)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var request = HTTPClientRequest(url: integration.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: entry.key)
        request.headers.add(name: "User-Agent", value: "tally")
        for (name, value) in integration.headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: try encoder.encode(body)))
        let response = try await http.execute(request, timeout: .seconds(10))
        _ = try? await response.body.collect(upTo: 64 << 10)
        guard (200..<300).contains(response.status.code) else {
            throw DeliveryError(description: "webhook \(integration.url) answered \(response.status.code)")
        }
    }

    private func sendEmail(
        _ entry: OutboxEntry, template: String, to recipients: [String], contact: ContactState
    )
        async throws
    {
        let smtp = configuration.smtp
        let text = """
            Tally trigger "\(entry.trigger)" fired "\(entry.event)" for contact \(entry.contact).

            Template: \(template)
            Points: \(contact.points)
            Tags: \(contact.tags.sorted().joined(separator: ", "))

            """
        let message = EmailMessage(
            from: smtp.from, to: recipients, subject: template, body: text,
            headers: [
                ("Message-ID", "<\(Self.messageID(entry.key))@tally>"), ("X-Tally-Idempotency-Key", entry.key),
                ("X-Tally-Template", template),
            ])
        try await SMTPClient().send(message, via: SMTPRelay(host: smtp.host, port: smtp.port, from: smtp.from))
    }

    /// A stable Message-ID local part for a key (FNV-1a 64, hex), so that a resent message is recognisable.
    static func messageID(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16) + "." + String(key.utf8.count)
    }
}
