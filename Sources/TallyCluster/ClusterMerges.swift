public import TallyCore
public import TallyEngine
public import TallyNATS

/// Merges through any node (I2, K4). A merge goes to the partition of `from`, whose fold moves `from`'s history to the
/// partition of the contact it merges into when that is another (``PartitionHome``). Each partition resolves the ids it
/// holds, so no fold can tell that a merge across partitions closes a cycle; merges are therefore judged here, as a
/// single node judges them, one at a time in the cluster: under a cluster-wide lock, against the contacts as their
/// holders have folded every write before, and the lock is held until each merge is complete (both ids resolve to
/// one contact) — the next merge judged sees it.
extension ClusterNode {
    /// Publishes `events` like ``append(_:request:)``, after judging their merges in order (each against the merges
    /// before it in `events` too): a merge of a contact into itself, or one that would make a cycle, is refused (409),
    /// as is one from the ingest socket (its event's value 1) whose `from` is known (403, I1); nothing is published
    /// then — or, with `refused` `.skip` (Segment's calls), the refused merges are left out and the rest published.
    /// A merge sent again with its id (S6) is published again, as the duplicate it is, not judged again.
    public func appendJudgingMerges(
        _ events: [Event], request: String, refused: RefusedMerges = .reject
    ) async throws -> [PublishAck] {
        guard events.contains(where: \.type.isMerge) else {
            return try await reachingTheCluster { try await append(events, request: request) }
        }
        guard
            let revision = try await reachingTheCluster({ try await leases.lock("merges", timeout: settings.leaseTime) }
            )
        else {
            throw EngineError(.unavailable, "other merges are being judged and did not finish in time; try again")
        }
        do {
            let (events, after) = try await reachingTheCluster { try await judgeMerges(events, refused: refused) }
            // A merge judged on one before it in the request is published once that one is complete: published
            // together, the later could be folded first and send the earlier's `from` along a chain of partitions.
            var acks: [PublishAck] = []
            var start = 0
            for (part, end) in (after.sorted() + [events.count]).enumerated() where end > start {
                let segment = Array(events[start..<end])
                let suffix = part == 0 ? "" : ".\(part)"
                acks += try await reachingTheCluster { try await append(segment, request: request + suffix) }
                // The next merge judged must see these whole: wait until each `from` resolves to the contact its
                // `into` does, the relays between their partitions folded. Stored is stored: a merge that does not
                // complete in time is answered 202 all the same.
                do {
                    for event in segment where event.type.isMerge { try await awaitMerged(event) }
                } catch let error as ClusterReadError {
                    logger.warning("a merge is stored but not complete yet", metadata: ["tally.error": "\(error)"])
                }
                start = end
            }
            await leases.unlock("merges", revision: revision)
            return acks
        } catch {
            await leases.unlock("merges", revision: revision)
            throw error
        }
    }

    /// Waits until the ids a judged merge names resolve to one contact (its relays folded): up to twice the
    /// read-after timeout, then throws ``ClusterReadError`` (the merge is stored and will complete; the next merge
    /// judged may not see it yet, a risk the warning logged then names).
    private func awaitMerged(_ merge: Event) async throws {
        guard let target = merge.mergeTarget else { return }
        let deadline = ContinuousClock.now + readAfterTimeout * 2
        while true {
            let from = try await contact(merge.contact, settled: true)?.id ?? merge.contact
            let into = try await contact(target, settled: true)?.id ?? target
            if ByteString(from) == ByteString(into) { return }
            guard ContinuousClock.now < deadline else {
                throw ClusterReadError(partition: partitioning.partition(of: into), timeout: readAfterTimeout * 2)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Judges the merges of `events` in order with ``TallyEngine/judgeMerge(from:into:resolved:known:viaIngest:)``,
    /// resolving their ids through the partitions' holders once every write before is folded; returns the events to
    /// publish (without the refused merges, when `refused` is `.skip`), and the indices among them of the merges
    /// that name a contact an earlier merge of `events` merged (they are published once that one is complete). A
    /// refused merge whose id a partition's log holds was made already: it is kept, and the stream or the copy stores
    /// it once.
    private func judgeMerges(
        _ events: [Event], refused: RefusedMerges
    ) async throws -> (events: [Event], after: Set<Int>) {
        var overlay: [ByteString: ByteString] = [:]  // the merges of `events` before the one judged
        var kept: [Event] = []
        var after: Set<Int> = []
        for event in events {
            guard event.type.isMerge, let target = event.mergeTarget else {
                kept.append(event)
                continue
            }
            try TallyEngine.checkMergeContacts(from: event.contact, into: target)
            let source = try await contact(event.contact, settled: true)
            let destination = try await contact(target, settled: true)
            let (sourceID, destinationID) = (
                ByteString(source?.id ?? event.contact), ByteString(destination?.id ?? target)
            )
            let from = overlay[sourceID] ?? sourceID
            let into = overlay[destinationID] ?? destinationID
            let dependent = overlay[sourceID] != nil || overlay[destinationID] != nil
            let refusal: EngineError?
            do throws(EngineError) {
                try TallyEngine.judgeMerge(
                    from: event.contact, into: target, resolved: (from, into),
                    known: source?.state.known == true || overlay.values.contains(from), viaIngest: event.value == 1)
                refusal = nil
            } catch {
                refusal = error
            }
            if let refusal {
                if let id = event.id, try await isLogged(id) {
                    kept.append(event)
                    continue
                }
                guard refused == .skip else { throw refusal }
                TallyMetrics.mergesSkipped.increment()
                continue
            }
            for (alias, contact) in overlay where contact == from { overlay[alias] = into }
            overlay[from] = into
            if dependent { after.insert(kept.count) }
            kept.append(Self.resolved(event, from: from.string, into: into.string))
        }
        return (kept, after)
    }

    /// A judged merge as it is published: between the contacts its ids resolve to (the judge's view, every merge
    /// before it complete), so that it goes to the partition that holds `from`'s state, and `from` moves in one hop
    /// to the partition that holds `into`'s. Published as sent, a merge naming an alias would go where the alias was
    /// first merged and follow the aliases from there, and a chain that led it back through a partition it had left
    /// would meet its stale alias there and lose its way (found by `CrossPartitionMergeTests`). The single node
    /// resolves the ids itself: the merge is the same.
    static func resolved(_ merge: Event, from: String, into: String) -> Event {
        var event = merge
        event.contact = from
        event.item = into
        return event
    }

    /// Whether a partition's log holds an event with idempotency key `id` (asked of every partition, settled).
    private func isLogged(_ id: String) async throws -> Bool {
        try await gather(PartitionQuery(kind: .logged, settled: true, names: [id])).contains { $0.logged == true }
    }
}
