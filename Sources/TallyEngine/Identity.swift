public import TallyAPI
public import TallyCore
public import TallyStore

/// A contact as reads answer it (I2): the contact an id resolves to, its state and its aliases.
public struct ResolvedContact: Sendable {
    /// The contact the id resolves to: the id itself unless it was merged into another.
    public var id: String
    public var state: ContactState
    /// The ids merged into it, in byte order.
    public var aliases: [String]

    public init(id: String, state: ContactState, aliases: [String]) {
        self.id = id
        self.state = state
        self.aliases = aliases
    }
}

/// What an append does with a merge that would be refused (I2): `reject` refuses the request (`POST /v1/merge`,
/// 409 or 403), `skip` appends the request without it (Segment's `identify` and `alias`, sent again with every
/// page load, must not fail a batch).
public enum RefusedMerges: Sendable {
    case reject
    case skip
}

extension TallyEngine {
    /// The contact `id` resolves to, with its state and aliases; nil for a contact never seen.
    public func resolvedContact(_ id: String) throws -> ResolvedContact? {
        try Self.resolvedContact(id, in: projections)
    }

    /// The contact `id` resolves to in `projections` (a node's, or a cluster partition's), with its aliases.
    public static func resolvedContact(_ id: String, in projections: LiveProjections) throws -> ResolvedContact? {
        try projections.read { txn in
            let canonical = try txn.canonical(of: id) ?? id
            guard let state = try txn.contact(canonical) else { return nil }
            return ResolvedContact(id: canonical, state: state, aliases: try txn.aliases(of: canonical))
        }
    }

    /// I2: appends a `contact.merge` of `from` into `into` (answered like a post of events). Refused with 409,
    /// appending nothing, when both resolve to one contact (a merge into itself, or one that would make a cycle);
    /// with 403 on the ingest socket when `from` is known (I1).
    public func merge(
        from: String, into: String, viaIngest: Bool, id: String? = nil
    ) async throws(EngineError)
        -> AppendReceipt
    {
        try await append([Event.merge(from: from, into: into, at: wallClockMillis(), id: id, viaIngest: viaIngest)])
    }

    /// Refuses a merge whose `from` or `into` is not a contact id's length (the merge's form, before anything is
    /// judged against the projections).
    public static func checkMergeContacts(from: String, into: String) throws(EngineError) {
        for (field, id) in [("from", from), ("into", into)] where !EventLimits.contact.contains(id.utf8.count) {
            throw EngineError(
                .invalid,
                "\"\(field)\" must be \(EventLimits.contact.lowerBound)–\(EventLimits.contact.upperBound) bytes long, "
                    + "is \(id.utf8.count)", field: field)
        }
    }

    /// Refuses a merge of `from` into `into` whose ids resolve (`resolved`) to one contact — a merge into itself, or
    /// one that would make a cycle (409) — or, from the ingest socket, of a `from` that is `known` (403, I1).
    public static func judgeMerge(
        from: String, into: String, resolved: (from: ByteString, into: ByteString), known: Bool, viaIngest: Bool
    ) throws(EngineError) {
        if resolved.from == resolved.into {
            throw EngineError(
                .conflict,
                resolved.from == ByteString(from) && resolved.from == ByteString(into)
                    ? "a contact cannot be merged into itself"
                    : "\"\(from)\" and \"\(into)\" are already one contact (\"\(resolved.into.string)\"): "
                        + "merging them would make a cycle", field: "into")
        }
        if viaIngest, known {
            throw EngineError(
                .forbidden, "\"\(from)\" is a known contact: only the admin socket merges known contacts (I1)",
                field: "from")
        }
    }

    /// The merges of `events` that are allowed, judged in order against the projections (once they include the
    /// whole log, for `reject`) and against the merges before them in `events`; the others throw (`reject`) or are
    /// left out (`skip`, counted in `tally_merges_skipped_total`).
    func checkMerges(_ events: [Event], refused: RefusedMerges) async throws(EngineError) -> [Event] {
        for event in events where event.type.isMerge {
            try Self.checkMergeContacts(from: event.contact, into: event.mergeTarget ?? "")
        }
        // `POST /v1/merge` is judged against projections that include every event before it, so that its 403 or 409
        // is right. Segment's calls are not held up by the fold's lag: a merge judged on older projections that
        // should have been left out is folded as the no-op it is (the fold judges I1 and cycles again).
        if refused == .reject { try await awaitProjection(through: writer.head.value) }
        var overlay: [ByteString: ByteString] = [:]  // the merges of this request before the one judged
        var kept: [Event] = []
        for event in events {
            guard event.type.isMerge, let target = event.mergeTarget else {
                kept.append(event)
                continue
            }
            do {
                // A merge sent again with its id is a duplicate (S6), acknowledged as such, not judged again.
                if let id = event.id, try log.seq(forID: id) != nil {
                    kept.append(event)
                    continue
                }
                let (from, into, known) = try projections.read { txn in
                    func resolve(_ id: String) throws -> ByteString {
                        let stored = ByteString(try txn.canonical(of: id) ?? id)
                        return overlay[stored] ?? stored
                    }
                    let from = try resolve(event.contact)
                    let into = try resolve(target)
                    let known = try txn.contact(from.string)?.known == true || overlay.values.contains(from)
                    return (from, into, known)
                }
                try Self.judgeMerge(
                    from: event.contact, into: target, resolved: (from, into), known: known, viaIngest: event.value == 1
                )
                for (alias, contact) in overlay where contact == from { overlay[alias] = into }
                overlay[from] = into
                kept.append(event)
            } catch let error as EngineError {
                guard refused == .skip else { throw error }
                TallyMetrics.mergesSkipped.increment()
            } catch {
                throw EngineError(.unavailable, "\(error)")
            }
        }
        return kept
    }
}

extension ProjectionTransaction {
    /// A2, A6: a contact's audit trail summed up, optionally as of a time, with its newest `limit` entries; nil for
    /// an unknown contact. An alias answers for the contact it resolves to, whose trail holds the alias's entries
    /// (I4).
    public func explain(
        contact: String, asOf: Int64?, limit: Int
    ) throws -> (contact: ResolvedContact, explanation: Explanation)? {
        let id = try canonical(of: contact) ?? contact
        guard let state = try self.contact(id) else { return nil }
        var builder = Explanation.Builder(asOf: asOf, limit: limit)
        try forEachAudit(contact: id) { builder.add($0) }
        return (ResolvedContact(id: id, state: state, aliases: try aliases(of: id)), builder.explanation)
    }
}

extension ExplainDocument {
    /// `GET /v1/contacts/{id}/explain`'s document (A2): the contact's scores — as of `asOf` when set, from the
    /// trail — the sums by action, and the newest entries.
    public init(_ contact: ResolvedContact, _ explanation: Explanation, asOf: Int64?) {
        self.init(
            contact: contact.id, points: asOf == nil ? contact.state.points : explanation.points,
            groups: asOf == nil ? contact.state.groups : explanation.groups,
            byAction: Dictionary(explanation.byAction.map { ($0.action, $0.points) }, uniquingKeysWith: +),
            actions: explanation.byAction.map { .init(action: $0.action, points: $0.points) },
            entries: explanation.entries.map(ExplainDocument.Entry.init), entriesTotal: explanation.total,
            at: asOf.map(Timestamp.format))
    }
}

extension ExplainDocument.Entry {
    /// An audit entry as explain shows it.
    public init(_ entry: AuditEntry) {
        self.init(
            seq: entry.seq, id: entry.eventID, at: Timestamp.format(entry.at), action: entry.action,
            kind: entry.kind.name,
            rulesVersion: entry.version, group: entry.group, delta: entry.delta, scoreAfter: entry.scoreAfter,
            reason: entry.reason, origin: entry.origin)
    }
}
