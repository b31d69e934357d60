import Foundation

/// The part of NATS JetStream's API that Tally uses, over one ``NATSConnection``: streams, publishing with
/// acknowledgements (one by one or a batch at a time), and reading a stream from a sequence number through an
/// ephemeral pull consumer. JetStream's API is JSON over request-reply on `$JS.API.…` subjects.
public struct JetStream: Sendable {
    public let connection: NATSConnection
    /// How long an API request or a batch of publications may wait for its answers.
    public var timeout: Duration

    public init(_ connection: NATSConnection, timeout: Duration = .seconds(5)) {
        self.connection = connection
        self.timeout = timeout
    }

    // MARK: streams

    /// Creates the stream, or updates it when one of that name exists with another configuration (a stream's
    /// subjects and limits may change; its storage and name may not).
    @discardableResult
    public func createOrUpdateStream(_ configuration: StreamConfiguration) async throws(NATSError) -> StreamInfo {
        do {
            return try await api("STREAM.CREATE.\(configuration.name)", configuration, as: StreamInfo.self)
        } catch .jetStream(_, NATSError.streamNameInUse, _) {
            return try await api("STREAM.UPDATE.\(configuration.name)", configuration, as: StreamInfo.self)
        }
    }

    /// The stream's configuration and state; nil when there is no such stream.
    public func streamInfo(_ name: String) async throws(NATSError) -> StreamInfo? {
        do {
            return try await api("STREAM.INFO.\(name)", Empty(), as: StreamInfo.self)
        } catch .jetStream(_, NATSError.streamNotFound, _) {
            return nil
        }
    }

    /// The sequence number of the last message stored on `subject` in stream `name`; 0 when it has none.
    public func lastSequence(stream name: String, subject: String) async throws(NATSError) -> UInt64 {
        do {
            return try await api("STREAM.MSG.GET.\(name)", LastOnSubject(subject: subject), as: StoredMessage.self)
                .message.sequence
        } catch .jetStream(_, NATSError.noMessageFound, _) {
            return 0
        }
    }

    /// Deletes the message at `sequence` from stream `name`, its bytes overwritten on the servers' disks (an
    /// erasure, I8); a message already gone is no error. Returns whether it was there.
    @discardableResult
    public func deleteMessage(stream name: String, sequence: UInt64) async throws(NATSError) -> Bool {
        do {
            _ = try await api("STREAM.MSG.DELETE.\(name)", MessageDeletion(seq: sequence), as: Success.self)
            return true
        } catch .jetStream(_, let code, _) where code == NATSError.noMessageFound || code == NATSError.deleteFailed {
            return false
        }
    }

    /// Deletes the stream and everything in it.
    public func deleteStream(_ name: String) async throws(NATSError) {
        _ = try await api("STREAM.DELETE.\(name)", Empty(), as: Success.self)
    }

    // MARK: publishing

    /// Publishes one message and returns the stream's acknowledgement.
    public func publish(_ publication: JetStreamPublication) async throws(NATSError) -> PublishAck {
        try await publish([publication])[0]
    }

    /// Publishes every message with one flush and returns their acknowledgements in order: each message is stored
    /// by the stream (on a quorum of its replicas) once its acknowledgement is here. Throws the first refusal —
    /// the messages before it may be stored, and a retry with the same message ids stores them once (within the
    /// stream's duplicate window).
    public func publish(_ publications: [JetStreamPublication]) async throws(NATSError) -> [PublishAck] {
        let answers = try await connection.requestAll(publications.map(\.request), timeout: timeout)
        var acks: [PublishAck] = []
        acks.reserveCapacity(answers.count)
        for (answer, publication) in zip(answers, publications) {
            if answer.status == 503 { throw .noResponders(subject: publication.subject) }
            acks.append(try PublishAck.decode(answer.payload, subject: publication.subject))
        }
        return acks
    }

    // MARK: reading

    /// Creates an ephemeral pull consumer that reads `stream` from `sequence` on, only the subjects matching
    /// `subject` (all when nil), without acknowledgements: the reader keeps its own position. The server removes
    /// it after `inactivity` without a fetch.
    public func createReader(
        stream: String, from sequence: UInt64, subject: String? = nil, inactivity: Duration = .seconds(60)
    ) async throws(NATSError) -> StreamReader {
        let request = ConsumerCreateRequest(
            streamName: stream,
            config: ConsumerConfiguration(
                deliverPolicy: "by_start_sequence", optStartSeq: max(sequence, 1), ackPolicy: "none",
                filterSubject: subject, inactiveThreshold: inactivity.jetStreamNanoseconds, memoryStorage: true,
                replicas: 1))
        let info = try await api("CONSUMER.CREATE.\(stream)", request, as: ConsumerInfo.self)
        return StreamReader(jetStream: self, stream: stream, consumer: info.name)
    }

    /// Sends a JetStream API request and decodes its answer, throwing JetStream's `error` when it has one.
    func api<Response: Decodable>(
        _ operation: String, _ body: some Encodable, as _: Response.Type
    ) async throws(NATSError) -> Response {
        let subject = "$JS.API.\(operation)"
        let payload: Data
        do { payload = try JSONEncoder().encode(body) } catch {
            throw .badResponse(subject: subject, detail: "\(error)")
        }
        let answer = try await connection.request(subject, payload: Array(payload), timeout: timeout)
        return try decodeAnswer(answer.payload, subject: subject)
    }
}

/// `STREAM.MSG.DELETE`'s request: without `no_erase`, the server overwrites the message's bytes.
private struct MessageDeletion: Encodable {
    var seq: UInt64
}

/// `STREAM.MSG.GET` of the last message stored on a subject.
private struct LastOnSubject: Encodable {
    var subject: String

    enum CodingKeys: String, CodingKey {
        case subject = "last_by_subj"
    }
}

/// `STREAM.MSG.GET`'s answer, of which Tally reads the sequence number.
private struct StoredMessage: Decodable {
    struct Message: Decodable {
        var sequence: UInt64

        enum CodingKeys: String, CodingKey {
            case sequence = "seq"
        }
    }

    var message: Message
}

/// A message to publish to a stream: the subject, the payload, and the id JetStream deduplicates by (`Nats-Msg-Id`,
/// within the stream's duplicate window).
public struct JetStreamPublication: Sendable {
    public var subject: String
    public var payload: [UInt8]
    public var messageID: String?
    /// Stores the message only if the last one on its subject has this sequence (0: there is none).
    public var expectedLastSubjectSequence: UInt64?
    /// More headers, stored with the message.
    public var headers: NATSHeaders

    public init(
        subject: String, payload: [UInt8], messageID: String? = nil, expectedLastSubjectSequence: UInt64? = nil,
        headers: NATSHeaders = NATSHeaders()
    ) {
        self.subject = subject
        self.payload = payload
        self.messageID = messageID
        self.expectedLastSubjectSequence = expectedLastSubjectSequence
        self.headers = headers
    }

    var request: NATSRequest {
        var headers = self.headers
        if let messageID { headers.append("Nats-Msg-Id", messageID) }
        if let expectedLastSubjectSequence {
            headers.append("Nats-Expected-Last-Subject-Sequence", String(expectedLastSubjectSequence))
        }
        return NATSRequest(subject: subject, headers: headers.fields.isEmpty ? nil : headers, payload: payload)
    }
}

/// A stream's acknowledgement of a publication: where it stored the message, and whether it had it already (a
/// message id seen within the duplicate window; `sequence` is then the first copy's).
public struct PublishAck: Sendable, Equatable, Decodable {
    public var stream: String
    public var sequence: UInt64
    public var duplicate: Bool

    enum CodingKeys: String, CodingKey {
        case stream
        case sequence = "seq"
        case duplicate
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        stream = try container.decode(String.self, forKey: .stream)
        sequence = try container.decode(UInt64.self, forKey: .sequence)
        duplicate = try container.decodeIfPresent(Bool.self, forKey: .duplicate) ?? false
    }

    public init(stream: String, sequence: UInt64, duplicate: Bool) {
        self.stream = stream
        self.sequence = sequence
        self.duplicate = duplicate
    }

    /// Reads an acknowledgement. The common answer, `{"stream":"S","seq":N}` with `"duplicate":true` after it or
    /// `"domain"` before it, is read without a JSON decoder (a batch has one per event); anything else, an error
    /// among them, goes through ``decodeAnswer(_:subject:)``.
    static func decode(_ payload: [UInt8], subject: String) throws(NATSError) -> PublishAck {
        if let ack = quick(payload) { return ack }
        return try decodeAnswer(payload, subject: subject)
    }

    private static func quick(_ payload: [UInt8]) -> PublishAck? {
        func value(after key: StaticString) -> ArraySlice<UInt8>? {
            // `"key":` found by hand: Foundation's generic `firstRange(of:)` cost more than the rest of a publish.
            let needle = UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
            guard payload.count >= needle.count + 3 else { return nil }
            var start = 0
            while start + needle.count + 3 <= payload.count {
                if payload[start] == UInt8(ascii: "\""), payload[start + needle.count + 1] == UInt8(ascii: "\""),
                    payload[start + needle.count + 2] == UInt8(ascii: ":"),
                    zip(payload[(start + 1)...], needle).allSatisfy({ $0 == $1 })
                {
                    return payload[(start + needle.count + 3)...].drop(while: { $0 == UInt8(ascii: " ") })
                }
                start += 1
            }
            return nil
        }
        guard !payload.contains(UInt8(ascii: "\\")), value(after: "error") == nil,
            let streamValue = value(after: "stream"), streamValue.first == UInt8(ascii: "\""),
            let streamEnd = streamValue.dropFirst().firstIndex(of: UInt8(ascii: "\"")),
            let sequenceValue = value(after: "seq")
        else { return nil }
        let digits = sequenceValue.prefix(while: { $0 >= 48 && $0 <= 57 })
        guard let sequence = UInt64(ascii: digits) else { return nil }
        let duplicate = value(after: "duplicate").map { $0.starts(with: Array("true".utf8)) } ?? false
        return PublishAck(
            stream: String(decoding: streamValue[(streamValue.startIndex + 1)..<streamEnd], as: UTF8.self),
            sequence: sequence, duplicate: duplicate)
    }
}

/// A stream's configuration, as Tally sets it (JetStream fills in the rest with its defaults).
public struct StreamConfiguration: Sendable, Codable, Equatable {
    public var name: String
    public var subjects: [String]
    /// `file` or `memory`.
    public var storage: String = "file"
    public var replicas: Int = 1
    /// How long a message id is remembered for deduplication, in nanoseconds.
    public var duplicateWindow: Int64 = 120_000_000_000
    /// How long a message is kept, in nanoseconds (0: for ever).
    public var maxAge: Int64 = 0
    /// Messages kept per subject (-1: no limit).
    public var maxMessagesPerSubject: Int64 = -1
    /// `old` (drop the oldest past a limit) or `new` (refuse the new one).
    public var discard: String = "old"
    public var allowDirect: Bool = false
    public var allowRollup: Bool = false
    public var denyDelete: Bool = false

    enum CodingKeys: String, CodingKey {
        case name, subjects, storage, discard
        case replicas = "num_replicas"
        case duplicateWindow = "duplicate_window"
        case maxAge = "max_age"
        case maxMessagesPerSubject = "max_msgs_per_subject"
        case allowDirect = "allow_direct"
        case allowRollup = "allow_rollup_hdrs"
        case denyDelete = "deny_delete"
    }

    public init(name: String, subjects: [String], replicas: Int = 1) {
        self.name = name
        self.subjects = subjects
        self.replicas = replicas
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        subjects = try container.decodeIfPresent([String].self, forKey: .subjects) ?? []
        storage = try container.decodeIfPresent(String.self, forKey: .storage) ?? "file"
        replicas = try container.decodeIfPresent(Int.self, forKey: .replicas) ?? 1
        duplicateWindow = try container.decodeIfPresent(Int64.self, forKey: .duplicateWindow) ?? 0
        maxAge = try container.decodeIfPresent(Int64.self, forKey: .maxAge) ?? 0
        maxMessagesPerSubject = try container.decodeIfPresent(Int64.self, forKey: .maxMessagesPerSubject) ?? -1
        discard = try container.decodeIfPresent(String.self, forKey: .discard) ?? "old"
        allowDirect = try container.decodeIfPresent(Bool.self, forKey: .allowDirect) ?? false
        allowRollup = try container.decodeIfPresent(Bool.self, forKey: .allowRollup) ?? false
        denyDelete = try container.decodeIfPresent(Bool.self, forKey: .denyDelete) ?? false
    }
}

/// A stream's configuration and state.
public struct StreamInfo: Sendable, Decodable {
    public var config: StreamConfiguration
    public var state: State

    /// How much the stream holds.
    public struct State: Sendable, Decodable {
        public var messages: UInt64
        public var firstSequence: UInt64
        public var lastSequence: UInt64

        enum CodingKeys: String, CodingKey {
            case messages
            case firstSequence = "first_seq"
            case lastSequence = "last_seq"
        }
    }
}

/// A stream read in order from a sequence number, through an ephemeral pull consumer without acknowledgements.
public struct StreamReader: Sendable {
    public let jetStream: JetStream
    public let stream: String
    /// The consumer's name (the server chose it).
    public let consumer: String

    /// Up to `batch` messages after the last one fetched (from the start sequence at first), in stream order.
    /// Returns what is there at once when `wait` is nil or something is there; otherwise waits up to `wait` for the
    /// first message, and returns it with whatever else has arrived by then.
    public func fetch(batch: Int, wait: Duration? = nil) async throws(NATSError) -> [StreamMessage] {
        let ready = try await pull(batch: batch, wait: nil)
        guard ready.isEmpty, let wait else { return ready }
        // A pull request for a batch waits until the batch is full; for the first message, ask for one.
        let first = try await pull(batch: 1, wait: wait)
        guard !first.isEmpty, batch > 1 else { return first }
        return first + (try await pull(batch: batch - 1, wait: nil))
    }

    /// One pull request: up to `batch` messages, at once (`no_wait`) or waiting up to `wait` for the batch to fill.
    private func pull(batch: Int, wait: Duration?) async throws(NATSError) -> [StreamMessage] {
        let connection = jetStream.connection
        let inbox = connection.newInbox()
        let subscription = try connection.subscribe(inbox)
        defer { connection.unsubscribe(subscription) }
        let request = NextRequest(
            batch: batch, expires: wait.map(\.jetStreamNanoseconds), noWait: wait == nil ? true : nil)
        let subject = "$JS.API.CONSUMER.MSG.NEXT.\(stream).\(consumer)"
        let body: Data
        do { body = try JSONEncoder().encode(request) } catch {
            throw .badResponse(subject: subject, detail: "\(error)")
        }
        try connection.publish(subject, payload: Array(body), replyTo: inbox)
        let deadline = ContinuousClock.now + (wait ?? .zero) + jetStream.timeout
        do {
            return try await withThrowingTaskGroup(of: [StreamMessage]?.self) { group in
                group.addTask {
                    var messages: [StreamMessage] = []
                    for await message in subscription.messages {
                        if let status = message.status {
                            // 404 no messages, 408 the wait expired, 409 the consumer went away; 100 a heartbeat.
                            if status == 100 { continue }
                            if status == 404 || status == 408 { return messages }
                            throw NATSError.jetStream(
                                code: status, errorCode: 0,
                                description: message.headers?.statusDescription ?? "fetch ended with \(status)")
                        }
                        messages.append(try StreamMessage(message))
                        if messages.count == batch { return messages }
                    }
                    throw NATSError.connectionClosed("during a fetch from \(stream)")
                }
                group.addTask {
                    try await Task.sleep(until: deadline, clock: .continuous)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let messages = first else {
                    throw NATSError.timeout(subject: subject)
                }
                return messages
            }
        } catch let error as NATSError {
            throw error
        } catch {
            throw .connectionClosed("\(error)")
        }
    }

    /// Deletes the consumer (it would also go after its inactivity threshold).
    public func close() async {
        _ = try? await jetStream.api("CONSUMER.DELETE.\(stream).\(consumer)", Empty(), as: Success.self)
    }
}

/// A message read from a stream, with its stream sequence number.
public struct StreamMessage: Sendable, Equatable {
    public var subject: String
    public var sequence: UInt64
    public var headers: NATSHeaders?
    public var payload: [UInt8]

    /// Reads the stream sequence from the delivery's reply subject, `$JS.ACK.<stream>.<consumer>.<delivered>.
    /// <stream seq>.<consumer seq>.<time>.<pending>` (9 tokens), or with a domain and account hash before the
    /// stream (12 or more).
    init(_ message: NATSMessage) throws(NATSError) {
        guard let reply = message.replyTo else {
            throw .badResponse(subject: message.subject, detail: "a stream message without its metadata")
        }
        let tokens = reply.split(separator: ".", omittingEmptySubsequences: false)
        let sequenceToken: Int
        switch tokens.count {
        case 9: sequenceToken = 5
        case 12...: sequenceToken = 7
        default: throw .badResponse(subject: message.subject, detail: "unexpected metadata: \(reply)")
        }
        guard tokens[0] == "$JS", tokens[1] == "ACK", let sequence = UInt64(tokens[sequenceToken]) else {
            throw .badResponse(subject: message.subject, detail: "unexpected metadata: \(reply)")
        }
        subject = message.subject
        self.sequence = sequence
        headers = message.headers
        payload = message.payload
    }
}

// MARK: API documents

private struct ConsumerCreateRequest: Encodable {
    var streamName: String
    var config: ConsumerConfiguration

    enum CodingKeys: String, CodingKey {
        case streamName = "stream_name"
        case config
    }
}

private struct ConsumerConfiguration: Encodable {
    var deliverPolicy: String
    var optStartSeq: UInt64
    var ackPolicy: String
    var filterSubject: String?
    var inactiveThreshold: Int64
    var memoryStorage: Bool
    var replicas: Int

    enum CodingKeys: String, CodingKey {
        case deliverPolicy = "deliver_policy"
        case optStartSeq = "opt_start_seq"
        case ackPolicy = "ack_policy"
        case filterSubject = "filter_subject"
        case inactiveThreshold = "inactive_threshold"
        case memoryStorage = "mem_storage"
        case replicas = "num_replicas"
    }
}

private struct ConsumerInfo: Decodable {
    var name: String
}

private struct NextRequest: Encodable {
    var batch: Int
    var expires: Int64?
    var noWait: Bool?

    enum CodingKeys: String, CodingKey {
        case batch, expires
        case noWait = "no_wait"
    }
}

struct Empty: Codable {}

private struct Success: Decodable {}

/// JetStream's error object, in any API answer that failed.
private struct ErrorEnvelope: Decodable {
    struct Details: Decodable {
        var code: Int
        var errCode: Int?
        var description: String?

        enum CodingKeys: String, CodingKey {
            case code
            case errCode = "err_code"
            case description
        }
    }

    var error: Details?
}

/// Decodes a JetStream answer, throwing its `error` when it has one.
func decodeAnswer<Response: Decodable>(_ payload: [UInt8], subject: String) throws(NATSError) -> Response {
    let data = Data(payload)
    let decoder = JSONDecoder()
    if let details = (try? decoder.decode(ErrorEnvelope.self, from: data))?.error {
        throw .jetStream(code: details.code, errorCode: details.errCode ?? 0, description: details.description ?? "")
    }
    do {
        return try decoder.decode(Response.self, from: data)
    } catch {
        throw .badResponse(
            subject: subject, detail: "\(error): \(String(decoding: payload.prefix(200), as: UTF8.self))")
    }
}

extension Duration {
    /// Whole nanoseconds, as JetStream's API writes durations.
    public var jetStreamNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
