public import TallyCore
public import TallyNATS
public import TallyStore

/// The cluster's log (SPEC K1, K2): one JetStream stream whose subjects are the partitions, `tally.events.<p>`.
///
/// A contact's events go to its partition (``Partitioning``), so that one node folds all of them in order. Events
/// that concern every contact — a rules publication or a `rebuild` (A3), a clock event (D1) — go to every
/// partition, each copy at its place in that partition's order. An event with an `id` carries it as
/// `Nats-Msg-Id`, so that a retry within the stream's duplicate window is stored once (S6); the partition's copy
/// also skips an id it holds already (``EventLog``'s `ids`), which keeps S6 beyond the window.
public struct ClusterLog: Sendable {
    public let stream: String
    public let partitioning: Partitioning
    public let session: JetStreamSession

    public init(stream: String = "TALLY_EVENTS", partitioning: Partitioning, session: JetStreamSession) {
        self.stream = stream
        self.partitioning = partitioning
        self.session = session
    }

    /// The subject of partition `partition`.
    public static func subject(_ partition: Int) -> String { "tally.events.\(partition)" }

    /// The stream sequence of the last message stored in `partition` (0: none).
    public func lastSequence(of partition: Int) async throws(NATSError) -> UInt64 {
        let (stream, subject) = (stream, Self.subject(partition))
        return try await session.retrying(for: .seconds(5)) { jetStream throws(NATSError) in
            try await jetStream.lastSequence(stream: stream, subject: subject)
        }
    }

    /// The stream sequence of the last message stored in any partition (0: none).
    public func lastSequence() async throws(NATSError) -> UInt64 {
        let stream = self.stream
        return try await session.retrying(for: .seconds(5)) { jetStream throws(NATSError) in
            try await jetStream.streamInfo(stream)?.state.lastSequence ?? 0
        }
    }

    /// Creates the stream (or updates its replicas and duplicate window).
    public func prepare(replicas: Int, duplicateWindow: Duration) async throws(NATSError) {
        var configuration = StreamConfiguration(name: stream, subjects: ["tally.events.*"], replicas: replicas)
        configuration.duplicateWindow = duplicateWindow.jetStreamNanoseconds
        _ = try await session.retrying(for: .seconds(30)) { jetStream throws(NATSError) in
            try await jetStream.createOrUpdateStream(configuration)
        }
    }

    /// Publishes a request's events and returns once the stream has stored every one (on a quorum of its replicas):
    /// one acknowledgement per message, in order — a broadcast event has one per partition. `request` names the
    /// request uniquely (a retry of it by this node reuses it), so that a broadcast's copies deduplicate too.
    public func append(_ events: [Event], request: String) async throws(NATSError) -> [PublishAck] {
        var publications: [JetStreamPublication] = []
        publications.reserveCapacity(events.count)
        for (index, event) in events.enumerated() {
            let record = EventCodec.encode(event)
            if event.type.switchesRules || event.type == .clock {
                for partition in 0..<partitioning.count {
                    publications.append(
                        JetStreamPublication(
                            subject: Self.subject(partition), payload: record,
                            messageID: Self.messageID(event.id.map { "id:\($0)" } ?? "\(request).\(index)")
                                + ".p\(partition)"))
                }
            } else {
                publications.append(
                    JetStreamPublication(
                        subject: Self.subject(partitioning.partition(of: event.contact)), payload: record,
                        messageID: event.id.map { Self.messageID("id:\($0)") }))
            }
        }
        return try await session.publish(publications)
    }

    /// Publishes one event that concerns every contact (a rules publication, a rebuild, a clock event) to
    /// `partitions`, with message ids `<messageID>.p<partition>`: a repeat with the same `messageID` is stored once
    /// per partition within the duplicate window. Returns once the stream stored every copy.
    public func broadcast(
        _ event: Event, to partitions: some Sequence<Int>, messageID: String
    ) async throws(NATSError) -> [PublishAck] {
        let record = EventCodec.encode(event)
        let publications = partitions.map { partition in
            JetStreamPublication(
                subject: Self.subject(partition), payload: record,
                messageID: Self.messageID(messageID) + ".p\(partition)")
        }
        return try await session.publish(publications)
    }

    /// K4: publishes relays to the partitions they are for, in order, each with a message id naming its position in
    /// partition `origin` (a relay published again within the duplicate window is stored once; after it, its event id
    /// makes the receiving copy skip it), then — once the stream stored every one — a `partition.relayed` event to
    /// `origin` that records them as published. Returns the acknowledgement of that last event.
    public func relay(_ relays: [Relay], from origin: Int, at time: Int64) async throws(NATSError) -> PublishAck? {
        guard let last = relays.last else { return nil }
        _ = try await session.publish(
            relays.map { relay in
                JetStreamPublication(
                    subject: Self.subject(relay.partition), payload: EventCodec.encode(relay.event),
                    messageID: Self.messageID(Relay.identifier(from: origin, at: relay.position)))
            })
        let published = Relay.published(through: last.position, at: time)
        return try await session.publish([
            JetStreamPublication(
                subject: Self.subject(origin), payload: EventCodec.encode(published),
                messageID: Self.messageID("relayed:\(origin):\(last.position.seq):\(last.position.index)"))
        ]).last
    }

    /// A message id as a header value: bytes below `!`, DEL and `%` percent-encoded (an event id may hold any
    /// character; a header line may not hold CR or LF). Other bytes, UTF-8 sequences included, pass unchanged.
    static func messageID(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if byte < 0x21 || byte == 0x7F || byte == UInt8(ascii: "%") {
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
