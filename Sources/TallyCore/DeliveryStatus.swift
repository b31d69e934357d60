/// Where a side effect stands in its delivery (T7).
public enum DeliveryState: String, Sendable, Codable {
    case pending, delivered, failed
}

/// A side effect's delivery as the fold derives it from the outcome events in the log (T7): the log alone knows
/// what was sent, so a rebuild, lost projections or a restored backup never send it again.
///
/// The fold reads neither the configuration nor the clock: every time comes from an event.
public struct DeliveryStatus: Sendable, Equatable {
    public var state: DeliveryState
    /// Delivery attempts made so far: each `outbox.delivered`, `outbox.attempt_failed` and `outbox.parked`
    /// counts one; `outbox.retried` starts again from none.
    public var attempts: Int
    /// Wall-clock epoch milliseconds of the next attempt (pending entries); 0 for one never attempted.
    public var dueAt: Int64
    public var lastError: String?
    /// Wall-clock epoch milliseconds of the successful delivery.
    public var deliveredAt: Int64?

    public init(
        state: DeliveryState = .pending, attempts: Int = 0, dueAt: Int64 = 0, lastError: String? = nil,
        deliveredAt: Int64? = nil
    ) {
        self.state = state
        self.attempts = attempts
        self.dueAt = dueAt
        self.lastError = lastError
        self.deliveredAt = deliveredAt
    }

    /// Folds one delivery outcome event (``EventType/isDeliveryOutcome``). A delivered side effect stays
    /// delivered whatever follows: it is never sent again.
    public mutating func apply(_ event: Event) {
        guard state != .delivered else { return }
        switch event.type {
        case .outboxDelivered:
            state = .delivered
            attempts += 1
            deliveredAt = event.at
            lastError = nil
        case .outboxAttemptFailed:
            state = .pending
            attempts += 1
            dueAt = event.value ?? event.at
            lastError = event.reason
        case .outboxParked:
            state = .failed
            attempts += 1
            lastError = event.reason
        case .outboxRetried:
            state = .pending
            attempts = 0
            dueAt = event.at
        default:
            break
        }
    }
}

extension SideEffect {
    /// Whether the effect is delivered through the outbox (a webhook or an email) rather than applied to the
    /// contact by the fold (tags, segments, campaigns).
    public var isDelivered: Bool {
        switch kind {
        case .integrationPush, .emailSend, .emailSendToUser: true
        case .tags, .segments, .campaigns: false
        }
    }
}
