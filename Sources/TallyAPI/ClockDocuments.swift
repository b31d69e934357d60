/// The body of `POST /v1/clock` (D1): the time to append as a clock event, an RFC 3339 date-time or integer epoch
/// milliseconds; the daemon's wall time when absent.
public struct ClockRequest: Codable, Sendable, Equatable {
    /// A time as the API takes it.
    public enum Time: Codable, Sendable, Equatable {
        case text(String)
        case millis(Int64)

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let millis = try? container.decode(Int64.self) {
                self = .millis(millis)
            } else {
                self = .text(try container.decode(String.self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .text(let text): try container.encode(text)
            case .millis(let millis): try container.encode(millis)
            }
        }
    }

    public var at: Time?

    public init(at: Time? = nil) { self.at = at }
}

/// The answer to `GET /v1/clock` (D1): the fold's now and the awards waiting to expire or decay.
public struct ClockDocument: Codable, Sendable, Equatable {
    /// The greatest clock time folded, RFC 3339; nil before the first clock event.
    public var now: String?
    /// Awards that will still expire or decay (D2, D3).
    public var aging: Int
    /// The earliest time one of them is due, RFC 3339; nil when none waits.
    public var nextDue: String?

    public init(now: String?, aging: Int, nextDue: String?) {
        self.now = now
        self.aging = aging
        self.nextDue = nextDue
    }

    enum CodingKeys: String, CodingKey {
        case now, aging
        case nextDue = "next_due"
    }
}
