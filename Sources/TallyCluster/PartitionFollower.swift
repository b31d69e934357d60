public import TallyNATS
public import TallyStore

/// A node's copy of one partition (SPEC K3): reads the partition's subject of the cluster's stream from where its
/// local log stands, and appends what it reads to that log, with the stream position in the same transaction
/// (``EventLog/append(_:streamPosition:)``). After a crash, or when another node held the partition meanwhile, it
/// resumes after exactly what the log holds: no message skipped, none appended twice. The log is then folded by the
/// same projector, in the same formats, as a single node's.
public struct PartitionFollower: Sendable {
    public let partition: Int
    public let log: EventLog
    public let clusterLog: ClusterLog

    public init(partition: Int, log: EventLog, clusterLog: ClusterLog) {
        self.partition = partition
        self.log = log
        self.clusterLog = clusterLog
    }

    /// Copies what the partition holds after the log's position, in transactions of up to `batch` messages; waits
    /// up to `wait` for a first message when there is none. Returns how many messages it copied.
    @discardableResult
    public func catchUp(batch: Int = 1000, wait: Duration? = nil) async throws -> Int {
        let position = try log.streamPosition()
        let (stream, subject) = (clusterLog.stream, ClusterLog.subject(partition))
        let reader = try await clusterLog.session.retrying(for: .seconds(10)) { jetStream throws(NATSError) in
            try await jetStream.createReader(stream: stream, from: position + 1, subject: subject)
        }
        var copied = 0
        var waitFirst = wait
        do {
            while true {
                let messages = try await reader.fetch(batch: batch, wait: waitFirst)
                waitFirst = nil
                guard let last = messages.last else { break }
                let events = try messages.map { message in try EventCodec.decode(message.payload) }
                _ = try log.append([.events(events)], streamPosition: last.sequence)
                copied += messages.count
            }
        } catch {
            await reader.close()
            throw error
        }
        await reader.close()
        return copied
    }
}
