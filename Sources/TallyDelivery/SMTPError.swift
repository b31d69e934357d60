/// Why one email could not be handed to the SMTP relay: the step of the exchange that failed, the relay's reply
/// code and text when it answered, and whether trying again later can help.
///
/// The outbox retries transient errors with backoff and parks a message on a permanent one
/// (``isPermanent``): 5xx replies and invalid input are permanent; 4xx replies, timeouts, refused or dropped
/// connections and replies that make no sense are transient.
public struct SMTPError: Error, Sendable, CustomStringConvertible {
    /// The step of the SMTP exchange at which sending failed.
    ///
    /// Invalid input is reported, before connecting, at the stage that would have used it: the relay's host,
    /// port or timeout at ``connect``, the HELO name at ``ehlo``, the sender at ``mailFrom``, a recipient at
    /// ``rcptTo``, the subject or a header at ``message``.
    public enum Stage: String, Sendable, Hashable, CustomStringConvertible {
        /// Opening the TCP connection to the relay.
        case connect
        /// Waiting for the relay's `220` greeting.
        case greeting
        /// `EHLO`, or the `HELO` sent when the relay refuses `EHLO`.
        case ehlo
        /// `MAIL FROM:<sender>`.
        case mailFrom
        /// `RCPT TO:<recipient>`, once per recipient.
        case rcptTo
        /// The `DATA` command, answered by `354` before the message is sent.
        case data
        /// The message itself, answered after the terminating `.` line.
        case message
        /// `QUIT`. ``SMTPClient/send(_:via:)`` never throws at this stage: once the relay has accepted the
        /// message, a failing `QUIT` does not make the delivery fail.
        case quit

        public var description: String { rawValue }
    }

    /// What went wrong, independent of the stage.
    public enum Kind: Sendable, Hashable {
        /// The message or the relay settings are not acceptable (a malformed address, CR or LF in a header, …);
        /// found before connecting, or after `EHLO` when the message needs an extension the relay lacks.
        /// Permanent.
        case invalidInput
        /// The relay answered with a 4xx (transient) or 5xx (permanent) reply.
        case rejected
        /// The relay's reply could not be parsed or had a code that does not fit the stage (such as a 2xx
        /// reply to `DATA`). Transient.
        case unexpectedReply
        /// The TCP connection could not be opened (refused, unreachable, DNS failure). Transient.
        case connectionFailed
        /// The relay closed the connection, or it failed, in the middle of the exchange. Transient.
        case connectionClosed
        /// The whole exchange did not finish within ``SMTPRelay/timeout``. Transient.
        case timeout
    }

    /// The step of the exchange that failed.
    public let stage: Stage
    /// What went wrong.
    public let kind: Kind
    /// The relay's reply code, when the failure is a reply (``Kind/rejected`` and usually
    /// ``Kind/unexpectedReply``).
    public let code: Int?
    /// The relay's reply text (lines joined with `\n`, codes removed), when it answered.
    public let serverText: String?
    /// A short explanation in words from the client's side (empty when the reply says it all).
    public let detail: String

    /// Creates an error; the client makes these, tests and callers may too.
    public init(stage: Stage, kind: Kind, code: Int? = nil, serverText: String? = nil, detail: String = "") {
        self.stage = stage
        self.kind = kind
        self.code = code
        self.serverText = serverText
        self.detail = detail
    }

    /// Whether sending the same message again cannot succeed: invalid input and 5xx replies. Everything else
    /// (4xx replies, timeouts, connection failures, unexpected replies) is worth retrying.
    public var isPermanent: Bool {
        switch kind {
        case .invalidInput: true
        case .rejected: (code ?? 0) >= 500
        case .unexpectedReply, .connectionFailed, .connectionClosed, .timeout: false
        }
    }

    public var description: String {
        var text = "SMTP \(stage) failed"
        switch kind {
        case .invalidInput: text += ", invalid input"
        case .rejected, .unexpectedReply:
            text += kind == .rejected ? ", rejected" : ", unexpected reply"
            if let code { text += " \(code)" }
        case .connectionFailed: text += ", cannot connect"
        case .connectionClosed: text += ", connection lost"
        case .timeout: text += ", timed out"
        }
        text += isPermanent ? " (permanent)" : " (transient)"
        if let serverText, !serverText.isEmpty {
            text += ": " + serverText.split(separator: "\n").joined(separator: " / ")
        }
        if !detail.isEmpty { text += serverText?.isEmpty == false ? " (\(detail))" : ": " + detail }
        return text
    }
}
