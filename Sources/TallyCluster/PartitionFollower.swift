public import TallyCore
import TallyNATS
public import TallyStore

/// A node's copy of one partition (SPEC K3): reads the partition's subject of the cluster's stream from where its
/// local log stands, and appends what it reads to that log, with the stream position in the same transaction
/// (``EventLog/append(copied:at:streamPosition:)``), each event under its stream sequence. After a crash, or when
/// another node held the partition meanwhile, it
/// resumes after exactly what the log holds: no message skipped, none appended twice. The log is then folded by the
/// same projector, in the same formats, as a single node's.
public struct PartitionFollower: Sendable {
    public let partition: Int
    public let clusterLog: ClusterLog
    /// The stream position of the last message the copy holds.
    private let position: @Sendable () throws -> UInt64
    /// Appends copied events, each under its stream sequence (`positions`), with the position of the last message, in
    /// one durable transaction.
    private let append: @Sendable (_ events: [Event], _ positions: [UInt64], _ position: UInt64) async throws -> Void

    /// A follower that appends to `log` itself (nothing else may append to it meanwhile).
    public init(partition: Int, log: EventLog, clusterLog: ClusterLog) {
        self.init(
            partition: partition, clusterLog: clusterLog, position: { try log.streamPosition() },
            append: { events, positions, position in
                _ = try log.append(copied: events, at: positions, streamPosition: position)
            })
    }

    /// A follower whose appends go through `append` (a partition engine's log writer) and whose position is read
    /// through `position`.
    public init(
        partition: Int, clusterLog: ClusterLog, position: @escaping @Sendable () throws -> UInt64,
        append: @escaping @Sendable (_ events: [Event], _ positions: [UInt64], _ position: UInt64) async throws -> Void
    ) {
        self.partition = partition
        self.clusterLog = clusterLog
        self.position = position
        self.append = append
    }

    /// Copies the partition as it grows, until cancelled or a read fails (then it throws, and a new call resumes
    /// from what the log holds), through one reader: each fetch waits up to `wait` for a first message and takes up
    /// to `batch`, appended in one transaction. Calls `caughtUp` whenever it has read to the partition's end.
    public func follow(batch: Int, wait: Duration, caughtUp: @Sendable () -> Void) async throws {
        try await withReader { reader in
            while !Task.isCancelled {
                let messages = try await reader.fetch(batch: batch, wait: wait)
                try await copy(messages)
                // Fewer than asked for: the fetch took everything there was.
                if messages.count < batch { caughtUp() }
            }
        }
    }

    /// Copies what the partition holds after the log's position, in transactions of up to `batch` messages; waits
    /// up to `wait` for a first message when there is none. Returns how many messages it copied.
    @discardableResult
    public func catchUp(batch: Int = 1000, wait: Duration? = nil) async throws -> Int {
        try await withReader { reader in
            var copied = 0
            var waitFirst = wait
            while true {
                let messages = try await reader.fetch(batch: batch, wait: waitFirst)
                waitFirst = nil
                guard !messages.isEmpty else { return copied }
                try await copy(messages)
                copied += messages.count
            }
        }
    }

    /// Runs `body` with a reader of the partition from after the log's position, closed afterwards.
    private func withReader<T>(_ body: (StreamReader) async throws -> T) async throws -> T {
        let position = try self.position()
        let (stream, subject) = (clusterLog.stream, ClusterLog.subject(partition))
        let reader = try await clusterLog.session.retrying(for: .seconds(10)) { jetStream throws(NATSError) in
            try await jetStream.createReader(stream: stream, from: position + 1, subject: subject)
        }
        do {
            let result = try await body(reader)
            await reader.close()
            return result
        } catch {
            await reader.close()
            throw error
        }
    }

    /// Appends fetched messages' events with the position of the last, in one transaction.
    private func copy(_ messages: [StreamMessage]) async throws {
        guard let last = messages.last else { return }
        try await append(
            messages.map { message in try EventCodec.decode(message.payload) }, messages.map(\.sequence), last.sequence)
    }
}
