/// A JetStream key-value bucket (the stream `KV_<bucket>` on subjects `$KV.<bucket>.<key>`, one message kept per
/// key), with the compare-and-set operations that leases need: ``create(_:_:)`` succeeds for one writer only, and
/// ``update(_:_:revision:)`` only for the holder of the latest revision. With a time to live, a key nobody updates
/// disappears after it — a lease its holder stopped renewing.
public struct KeyValueBucket: Sendable {
    public let name: String
    public let jetStream: JetStream

    /// The bucket `name` through `jetStream`, as created before by ``create(_:ttl:replicas:in:)`` (here or by
    /// another process).
    public init(name: String, jetStream: JetStream) {
        self.name = name
        self.jetStream = jetStream
    }

    var streamName: String { "KV_\(name)" }
    func subject(_ key: String) -> String { "$KV.\(name).\(key)" }

    /// Opens the bucket, creating it (or updating its limits) as configured.
    public static func create(
        _ name: String, ttl: Duration? = nil, replicas: Int = 1, in jetStream: JetStream
    ) async throws(NATSError) -> KeyValueBucket {
        guard isValidKey(name) else { throw .protocolViolation("an invalid bucket name: \(name)") }
        var configuration = StreamConfiguration(name: "KV_\(name)", subjects: ["$KV.\(name).>"], replicas: replicas)
        configuration.maxMessagesPerSubject = 1
        configuration.discard = "new"
        configuration.allowDirect = true
        configuration.allowRollup = true
        configuration.denyDelete = true
        if let ttl {
            configuration.maxAge = ttl.jetStreamNanoseconds
            configuration.duplicateWindow = min(ttl.jetStreamNanoseconds, 120_000_000_000)
        }
        try await jetStream.createOrUpdateStream(configuration)
        return KeyValueBucket(name: name, jetStream: jetStream)
    }

    /// The key's latest entry (a deleted key's marker included); nil when the bucket has none.
    public func entry(_ key: String) async throws(NATSError) -> KeyValueEntry? {
        guard isValidKey(key) else { throw .protocolViolation("an invalid key: \(key)") }
        let answer = try await jetStream.connection.request(
            "$JS.API.DIRECT.GET.\(streamName).\(subject(key))", payload: [], timeout: jetStream.timeout)
        if answer.status == 404 { return nil }
        if let status = answer.status {
            throw .jetStream(code: status, errorCode: 0, description: answer.headers?.statusDescription ?? "")
        }
        guard let sequence = answer.headers?["Nats-Sequence"].flatMap(UInt64.init) else {
            throw .badResponse(subject: subject(key), detail: "an entry without its sequence")
        }
        let operation = answer.headers?["KV-Operation"]
        return KeyValueEntry(
            key: key, value: answer.payload, revision: sequence, isDeleted: operation == "DEL" || operation == "PURGE")
    }

    /// The key's value when it has one (not deleted).
    public func get(_ key: String) async throws(NATSError) -> KeyValueEntry? {
        guard let entry = try await entry(key), !entry.isDeleted else { return nil }
        return entry
    }

    /// The keys that have a value (not deleted, not expired) among those matching `pattern` (NATS wildcards: `*`
    /// one token, `>` the rest), in byte order. Reads the bucket's stream through a reader of its own.
    public func keys(matching pattern: String = ">") async throws(NATSError) -> [String] {
        let prefix = "$KV.\(name)."
        let reader = try await jetStream.createReader(stream: streamName, from: 1, subject: prefix + pattern)
        var deleted: [String: Bool] = [:]
        do {
            while true {
                let messages = try await reader.fetch(batch: 256)
                if messages.isEmpty { break }
                for message in messages where message.subject.hasPrefix(prefix) {
                    let operation = message.headers?["KV-Operation"]
                    deleted[String(message.subject.dropFirst(prefix.count))] =
                        operation == "DEL" || operation == "PURGE"
                }
            }
        } catch {
            await reader.close()
            throw error
        }
        await reader.close()
        return deleted.filter { !$0.value }.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Sets the key whatever it held; returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8]) async throws(NATSError) -> UInt64 {
        try await write(key, value, expecting: nil)
    }

    /// Sets the key only if it has no value (never set, deleted, or expired); returns the revision. Throws
    /// ``NATSError/jetStream(code:errorCode:description:)`` with ``NATSError/wrongLastSequence`` when it has one.
    @discardableResult
    public func create(_ key: String, _ value: [UInt8]) async throws(NATSError) -> UInt64 {
        do {
            return try await write(key, value, expecting: 0)
        } catch .jetStream(let code, NATSError.wrongLastSequence, let description) {
            // A deleted key keeps its marker as the last message: take its place.
            guard let entry = try await entry(key), entry.isDeleted else {
                throw .jetStream(code: code, errorCode: NATSError.wrongLastSequence, description: description)
            }
            return try await write(key, value, expecting: entry.revision)
        }
    }

    /// Sets the key only if its latest revision is `revision`; returns the new one.
    @discardableResult
    public func update(_ key: String, _ value: [UInt8], revision: UInt64) async throws(NATSError) -> UInt64 {
        try await write(key, value, expecting: revision)
    }

    /// Deletes the key (only at `revision`, when given), leaving a delete marker.
    public func delete(_ key: String, revision: UInt64? = nil) async throws(NATSError) {
        var headers = NATSHeaders()
        headers.append("KV-Operation", "DEL")
        try await write(key, [], expecting: revision, headers: headers)
    }

    @discardableResult
    private func write(
        _ key: String, _ value: [UInt8], expecting revision: UInt64?, headers: NATSHeaders = NATSHeaders()
    ) async throws(NATSError) -> UInt64 {
        guard isValidKey(key) else { throw .protocolViolation("an invalid key: \(key)") }
        let ack = try await jetStream.publish(
            JetStreamPublication(
                subject: subject(key), payload: value, expectedLastSubjectSequence: revision, headers: headers))
        return ack.sequence
    }
}

/// A key's entry: its value and revision (the stream sequence of the message that set it).
public struct KeyValueEntry: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    public var revision: UInt64
    /// A delete marker: the key has no value.
    public var isDeleted: Bool
}

/// Keys and bucket names are tokens of letters, digits, `-`, `_`, `=` and `.` (not at either end), as NATS's
/// key-value clients allow.
func isValidKey(_ key: String) -> Bool {
    guard let first = key.utf8.first, let last = key.utf8.last, first != UInt8(ascii: "."), last != UInt8(ascii: ".")
    else { return false }
    return key.utf8.allSatisfy { byte in
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "=")
            || byte == UInt8(ascii: ".")
    }
}
