import Crypto
import Foundation
public import TallyAPI
import TallyCore
import TallyEngine
import TallyNATS
import TallyStore

/// What one partition's holder erased (K4, I8).
struct PartitionErasureReport: Codable, Sendable {
    var partition: Int
    var removedEvents: Int
    /// The stream sequence of the partition's `contact.erased` record.
    var record: UInt64
    /// Files of the partition's directory on its holder that still hold an id or an email address of the contact.
    var residue: [String]
}

/// A partition's copy that holds events an erasure removed from the stream (it was made before): it must be copied
/// again (``PartitionReplica``).
struct StaleCopyError: Error, CustomStringConvertible {
    var partition: Int
    var position: UInt64
    var description: String {
        "the copy of partition \(partition) holds the event at \(position), which an erasure removed from the stream"
    }
}

extension ClusterNode {
    /// I8 across the cluster (K4): erases a contact with its aliases wherever they are. Under the merges' lock (no
    /// merge changes the family meanwhile), the contact is resolved through the holders and its aliases are
    /// gathered from every partition until no new one appears (a contact merged across partitions left aliases in
    /// both, and the ids merged into it before in its own). Then each partition's holder erases them
    /// (``PartitionReplica/erase(names:hash:at:)``): its copy and projections, the events' messages in the stream,
    /// and a `contact.erased` record naming only the keyed hash. Nodes drop the copies they keep of those partitions
    /// without holding them. 404 for a contact never seen; 500 naming the files when a holder's check finds a
    /// residue.
    public func erase(contact id: String) async throws -> ErasureReport {
        guard let resolved = try await contact(id, settled: true) else {
            throw EngineError(.notFound, "unknown contact \"\(id)\"")
        }
        guard
            let revision = try await reachingTheCluster({ try await leases.lock("merges", timeout: settings.leaseTime) }
            )
        else { throw EngineError(.unavailable, "merges are being judged and did not finish in time; try again") }
        do {
            let report = try await erase(resolved)
            await leases.unlock("merges", revision: revision)
            return report
        } catch {
            await leases.unlock("merges", revision: revision)
            throw error
        }
    }

    private func erase(_ resolved: ResolvedContact) async throws -> ErasureReport {
        var names = Set(([resolved.id] + resolved.aliases).map { ByteString($0) })
        while true {
            let answers = try await gather(
                PartitionQuery(kind: .aliases, settled: true, names: names.sorted().map(\.string)))
            let found = Set(answers.flatMap { $0.aliases ?? [] }.map { ByteString($0) })
            if found.isSubset(of: names) { break }
            names.formUnion(found)
        }
        let key = try await erasureKey()
        let hash = TallyEngine.erasureHash(of: resolved.id, key: key)
        let sorted = names.sorted().map(\.string)
        dropIdleCopies(of: sorted)
        let answers = try await gather(
            PartitionQuery(kind: .erase, settled: true, names: sorted, hash: hash, at: wallClockMillis()))
        let erased = answers.compactMap(\.erased)
        let report = ErasureReport(
            hash: hash, aliases: names.count - 1, removedEvents: erased.map(\.removedEvents).reduce(0, +),
            seq: erased.map(\.record).max() ?? 0,
            residue: erased.flatMap { erasure in erasure.residue.map { "partition \(erasure.partition): \($0)" } })
        logger.notice(
            "contact erased", metadata: ["tally.hash": "\(hash)", "tally.partitions": "\(erased.map(\.partition))"])
        guard report.residue.isEmpty else { throw ErasureResidueError(report: report) }
        return report
    }

    /// The partitions that hold events of `names`: their own (a contact's events go to the partition of its id), and
    /// those relayed to them (to the partition of the contact they were merged into, one of `names` too).
    func partitions(of names: [String]) -> Set<Int> {
        Set(names.map { partitioning.partition(of: $0) })
    }

    /// Removes the copies this node keeps of `names`' partitions without holding them (it held them before): they
    /// hold what the erasure removes, and would be copied again from the stream were the node to hold them again.
    func dropIdleCopies(of names: [String]) {
        for partition in partitions(of: names) where replica(partition) == nil {
            let directory = PartitionReplica.directory(of: partition, in: dataDirectory)
            guard FileManager.default.fileExists(atPath: directory) else { continue }
            do {
                try FileManager.default.removeItem(atPath: directory)
                logger.notice(
                    "idle partition copy dropped for an erasure", metadata: ["tally.partition": "\(partition)"])
            } catch {
                logger.error(
                    "an idle partition copy could not be dropped for an erasure",
                    metadata: ["tally.partition": "\(partition)", "tally.error": "\(error)"])
            }
        }
    }

    /// The secret of the erasure hashes, shared by the cluster: 32 random bytes under `erasure_key` in the bucket
    /// `tally_rules`, made by the first erasure (compare-and-set: every node uses the same).
    private func erasureKey() async throws -> SymmetricKey {
        let replicas = settings.replicas
        return try await reachingTheCluster {
            let jetStream = try await session.jetStream()
            let bucket = try await KeyValueBucket.create("tally_rules", replicas: replicas, in: jetStream)
            if let entry = try await bucket.get("erasure_key"), entry.value.count == 32 {
                return SymmetricKey(data: entry.value)
            }
            let fresh = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
            do {
                _ = try await bucket.create("erasure_key", fresh)
                return SymmetricKey(data: fresh)
            } catch {
                guard let entry = try await bucket.get("erasure_key"), entry.value.count == 32 else { throw error }
                return SymmetricKey(data: entry.value)
            }
        }
    }
}

extension PartitionReplica {
    /// I8 in this partition (K4): the fold's half first — the copy and the projections lose every event and record
    /// of `names`, and the projections keep a mark of what the stream must lose — then the events' messages are
    /// deleted from the stream (their bytes overwritten), the `contact.erased` record is published to the
    /// partition (its `value` the first position erased: a copy that still holds it is stale), and the mark is
    /// cleared. The outbox's delivery holds its attempts back during the removal (no outcome naming the contact
    /// follows it). Last, the copy's files are written afresh and searched for the ids and the email address. With
    /// `names` nil it finishes an erasure the mark holds. Nil when the partition holds nothing of them.
    func erase(names: [String]?, hash: String, at: Int64) async throws -> PartitionErasureReport? {
        let projector = self.projector
        let removal = {
            try await projector.exclusively { folder in try folder.erase(names: names, hash: hash, at: at) }
        }
        // No delivery outcome naming the contact after its removal: those in flight are removed with it.
        let removed =
            if let outbox { try await outbox.withoutAttempts(removal) } else { try await removal() }
        guard let (erasure, emails) = removed else { return nil }
        let stream = clusterLog.stream
        for position in erasure.positions {
            _ = try await clusterLog.session.retrying(for: .seconds(30)) { jetStream throws(NATSError) in
                try await jetStream.deleteMessage(stream: stream, sequence: position)
            }
        }
        let record = Event(
            type: .contactErased, contact: erasure.hash, at: erasure.at, id: "erased:\(erasure.hash)",
            value: erasure.positions.first.map { Int64(bitPattern: $0) })
        let acks = try await clusterLog.broadcast(
            record, to: [partition], messageID: "erased:\(erasure.hash):\(erasure.positions.first ?? 0)")
        try projector.projections.store.update { txn in try txn.setPendingStreamErasure(nil) }
        let log = self.log
        try await writer.exclusively { try log.compact() }
        try await projector.compactProjections()
        let needles = (erasure.names + emails.sorted()).map { Array($0.utf8) }
        let residue = ResidueScan.files(under: directory, containing: needles).map(\.path)
        return PartitionErasureReport(
            partition: partition, removedEvents: erasure.positions.count, record: acks.map(\.sequence).max() ?? 0,
            residue: residue)
    }

    /// Finishes the erasure a crash interrupted, if the projections hold its mark.
    func finishPendingErasure() async {
        guard (try? projector.projections.store.read({ try $0.pendingStreamErasure() })) != nil else { return }
        logger.warning("finishing an interrupted erasure", metadata: ["tally.partition": "\(partition)"])
        do {
            _ = try await erase(names: nil, hash: "", at: 0)
        } catch {
            logger.error(
                "the interrupted erasure failed",
                metadata: ["tally.partition": "\(partition)", "tally.error": "\(error)"])
        }
    }

    /// Throws ``StaleCopyError`` when `events`, about to be copied, hold an erasure's record whose first erased
    /// position this copy still holds: it was copied before the erasure removed them from the stream.
    static func checkNotStale(_ events: [Event], log: EventLog, partition: Int) throws {
        for event in events where event.type == .contactErased {
            guard let value = event.value else { continue }
            let position = UInt64(bitPattern: value)
            if try log.event(at: position) != nil { throw StaleCopyError(partition: partition, position: position) }
        }
    }
}
