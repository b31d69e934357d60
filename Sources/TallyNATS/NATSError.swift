/// What went wrong talking to NATS or JetStream, with the context to act on it.
public enum NATSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No server in the list accepted a connection; the last failure of each.
    case connectionFailed(String)
    /// The connection closed (the server went away, or ``NATSConnection/close()`` was called) before the answer.
    case connectionClosed(String)
    /// The server sent something this client cannot read: a bug on one side.
    case protocolViolation(String)
    /// The server reported an error (`-ERR`).
    case server(String)
    /// A request had no answer within its timeout.
    case timeout(subject: String)
    /// A request's subject has no subscriber (status 503): for a JetStream API subject, JetStream is not enabled
    /// or the stream does not exist.
    case noResponders(subject: String)
    /// JetStream refused a request: its `error` object (`code` is HTTP-like, `errorCode` JetStream's own).
    case jetStream(code: Int, errorCode: Int, description: String)
    /// A JetStream answer that does not decode.
    case badResponse(subject: String, detail: String)

    public var description: String {
        switch self {
        case .connectionFailed(let detail): "cannot connect to NATS: \(detail)"
        case .connectionClosed(let detail): "the NATS connection closed: \(detail)"
        case .protocolViolation(let detail): "NATS protocol violation: \(detail)"
        case .server(let detail): "NATS server error: \(detail)"
        case .timeout(let subject): "no answer on \(subject) in time"
        case .noResponders(let subject): "no responders on \(subject)"
        case .jetStream(let code, let errorCode, let description):
            "JetStream error \(code)/\(errorCode): \(description)"
        case .badResponse(let subject, let detail): "an unreadable answer on \(subject): \(detail)"
        }
    }

    /// JetStream's code for a publish whose expected last sequence (per subject) did not match: a key-value
    /// revision check that failed.
    public static let wrongLastSequence = 10071
    /// JetStream's code for a stream name in use with another configuration.
    public static let streamNameInUse = 10058
    /// JetStream's code for a stream that does not exist.
    public static let streamNotFound = 10059
    /// JetStream's code for a message get that found nothing (no message on the subject).
    public static let noMessageFound = 10037
    /// JetStream's "message delete failed": what `STREAM.MSG.DELETE` answers for a sequence not in the stream.
    public static let deleteFailed = 10057
}
