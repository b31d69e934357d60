/// Why one delivery attempt of an outbox entry failed, with what it was sent to and whether trying again can
/// help (T7).
public struct DeliveryError: Error, Sendable, CustomStringConvertible {
    /// What the outbox does next.
    public enum Decision: Sendable, Equatable {
        /// Try again after the backoff, and not before `notBefore` (wall-clock epoch milliseconds, from a
        /// webhook's `Retry-After`) when given.
        case retry(notBefore: Int64?)
        /// Park the entry as failed at once: sending it again cannot succeed (a 5xx SMTP reply, a webhook's 4xx
        /// other than 408 and 429, an integration missing from the configuration).
        case park
    }

    /// The outbox key of the entry.
    public var key: String
    /// What the attempt was sent to: `webhook <url>`, `SMTP relay <host>:<port>`, or `outbox` for a failure
    /// before sending.
    public var target: String
    /// The HTTP status or the SMTP reply code, when the receiver answered.
    public var code: Int?
    /// What went wrong, in words.
    public var reason: String
    public var decision: Decision

    public init(key: String, target: String, code: Int? = nil, reason: String, decision: Decision) {
        self.key = key
        self.target = target
        self.code = code
        self.reason = reason
        self.decision = decision
    }

    /// Whether the entry is parked without further attempts.
    public var isPermanent: Bool { decision == .park }

    public var description: String { "\(target): \(reason)" + (isPermanent ? " (permanent)" : "") }

    /// The decision for a webhook's HTTP status other than 2xx: a 4xx other than 408 and 429 parks; 408, 429,
    /// 5xx and anything else are retried.
    public static func webhookDecision(status: Int, notBefore: Int64?) -> Decision {
        (400..<500).contains(status) && status != 408 && status != 429 ? .park : .retry(notBefore: notBefore)
    }
}
