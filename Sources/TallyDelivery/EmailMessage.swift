/// The SMTP relay that email side effects are handed to, as named in the configuration (`smtp:` in
/// `config/tally.yaml`).
///
/// The client speaks plain SMTP without STARTTLS or AUTH: the relay is expected on loopback or a trusted
/// network (a local Postfix, an MTA sidecar) that forwards the mail on.
public struct SMTPRelay: Sendable, Hashable {
    /// Host name or IP address of the relay.
    public var host: String
    /// TCP port of the relay.
    public var port: Int
    /// The envelope sender and `From:` address used when a message does not name its own.
    public var from: String
    /// The limit for the whole exchange with the relay, from connecting to the reply to the message.
    public var timeout: Duration
    /// The name the client gives itself in `EHLO`/`HELO`.
    public var heloName: String

    /// A relay at `host:port`, sending as `from`.
    public init(
        host: String, port: Int, from: String, timeout: Duration = .seconds(10), heloName: String = "tally.localhost"
    ) {
        self.host = host
        self.port = port
        self.from = from
        self.timeout = timeout
        self.heloName = heloName
    }
}

/// One email for one or more recipients: plain text (UTF-8, `text/plain`), or with an HTML part a
/// `multipart/alternative` message of the text and the HTML (E3).
///
/// The client writes `Date`, `From`, `To`, `Subject`, `Message-ID`, `MIME-Version`, `Content-Type` and
/// `Content-Transfer-Encoding`; ``headers`` adds more, such as `X-Tally-Idempotency-Key`. A `Message-ID` or
/// `Date` in ``headers`` replaces the generated one; the other headers the client writes cannot be given.
public struct EmailMessage: Sendable {
    /// The sender (envelope and `From:`); `nil` uses ``SMTPRelay/from``.
    public var from: String?
    /// The recipients: each gets `RCPT TO`, and all are listed in `To:`. At least one.
    public var to: [String]
    /// The subject, any Unicode; it is RFC 2047 encoded when it is not plain ASCII. No CR or LF.
    public var subject: String
    /// The text; line ends may be LF, CRLF or CR (they are sent as CRLF), lines may start with `.`.
    public var body: String
    /// The HTML alternative of ``body``, if any; line ends as for ``body``. With it the message is
    /// `multipart/alternative`: the text part first, then the HTML part (RFC 2046 §5.1.4: the preferred last).
    public var html: String?
    /// Extra header fields, in order, as (name, value). Values must not contain CR or LF; non-ASCII values
    /// are RFC 2047 encoded.
    public var headers: [(String, String)]

    /// A message from `from` (or the relay's sender) to `to`.
    public init(
        from: String? = nil, to: [String], subject: String, body: String, html: String? = nil,
        headers: [(String, String)] = []
    ) {
        self.from = from
        self.to = to
        self.subject = subject
        self.body = body
        self.html = html
        self.headers = headers
    }

    /// The message as it is sent after `DATA` to a relay that offers `8BITMIME` (without the dot-stuffing and
    /// the terminating `.` line), CRLF line ends: what `tally email preview` prints. The sender is ``from`` or
    /// `defaultSender`.
    public func formatted(
        defaultSender: String, heloName: String = "tally.localhost", now secondsSince1970: Int64
    )
        -> String
    {
        let lines = MessageEncoding.messageLines(
            of: self, sender: from ?? defaultSender, relayAccepts8Bit: true, heloName: heloName,
            now: secondsSince1970)
        var text: [UInt8] = []
        for line in lines { text += line + [13, 10] }
        return String(decoding: text, as: UTF8.self)
    }
}
