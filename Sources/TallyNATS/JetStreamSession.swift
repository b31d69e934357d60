/// JetStream through any server of a cluster, for as long as one is up: a ``NATSConnection`` that is replaced by one
/// to the next server of the list when it closes, and publications retried until the stream acknowledges them.
///
/// A batch is retried whole, with the same message ids: what a failed attempt stored is acknowledged as a duplicate
/// the next time (within the stream's duplicate window), so a retried batch is stored once (K2, S6). What is retried:
/// a closed connection, a server that cannot be reached, an answer that does not come (a stream electing a new
/// leader after its leader died), no responders (the stream's leader not known yet) and JetStream's 503. A refusal
/// (a wrong expected sequence, a bad subject) is thrown at once.
public actor JetStreamSession {
    public let servers: [NATSServerAddress]
    public let name: String
    /// How long one request, or one attempt at a batch, waits for its answers.
    public let timeout: Duration
    private var connection: NATSConnection?
    /// The server to try first on the next connect: the one after the last that failed.
    private var nextServer = 0

    public init(servers: [NATSServerAddress], name: String, timeout: Duration = .seconds(5)) {
        self.servers = servers
        self.name = name
        self.timeout = timeout
    }

    /// JetStream on the current connection, connecting first when there is none (or it closed).
    public func jetStream() async throws(NATSError) -> JetStream {
        if let connection, !connection.isClosed { return JetStream(connection, timeout: timeout) }
        let order = Array(servers[nextServer...] + servers[..<nextServer])
        let fresh = try await NATSConnection.connect(to: order, name: name, timeout: timeout)
        if let index = servers.firstIndex(of: fresh.server) { nextServer = index }
        connection = fresh
        return JetStream(fresh, timeout: timeout)
    }

    /// Publishes `batch` and returns its acknowledgements, retrying what can be retried for up to `patience`.
    public func publish(
        _ batch: [JetStreamPublication], patience: Duration = .seconds(30)
    ) async throws(NATSError)
        -> [PublishAck]
    {
        try await retrying(for: patience) { jetStream throws(NATSError) in try await jetStream.publish(batch) }
    }

    /// Runs `operation` on JetStream until it succeeds, retrying what can be retried for up to `patience`: after a
    /// connection failure it reconnects to the next server, after a timeout or a missing leader it waits a little.
    public func retrying<Result: Sendable>(
        for patience: Duration, _ operation: (JetStream) async throws(NATSError) -> Result
    ) async throws(NATSError) -> Result {
        let deadline = ContinuousClock.now + patience
        var pause = Duration.milliseconds(50)
        while true {
            do {
                return try await operation(try await jetStream())
            } catch {
                guard Self.isRetryable(error), ContinuousClock.now + pause < deadline else { throw error }
                if case .connectionClosed = error { dropConnection() }
                if case .connectionFailed = error { dropConnection() }
                if case .timeout = error { dropConnection() }  // the server may be gone without a word
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(1))
            }
        }
    }

    /// Closes the current connection.
    public func close() async {
        await connection?.close()
        connection = nil
    }

    private func dropConnection() {
        if let connection { Task { await connection.close() } }
        connection = nil
        nextServer = (nextServer + 1) % max(servers.count, 1)
    }

    static func isRetryable(_ error: NATSError) -> Bool {
        switch error {
        case .connectionClosed, .connectionFailed, .timeout, .noResponders: true
        case .jetStream(let code, _, _): code == 503
        case .protocolViolation, .server, .badResponse: false
        }
    }
}
