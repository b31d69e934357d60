public import TallyAPI
public import TallyCore

/// The engine's side of the HTTP API that is not administration: ingest, health and reading your own writes.
/// Every route goes through these methods (and those of `AdminOperations.swift`); none reaches into the writer,
/// the projector or the store.
extension TallyEngine {
    /// Appends events (already decoded and validated) and returns once they are durable (S6: events whose `id`
    /// is already in the log are acknowledged as duplicates): the one path of every event into the log. Throws
    /// ``EngineError`` `.unavailable` when the log cannot take them; nothing of the request is appended then.
    /// Merges among them (I2) are checked first; `refusedMerges` says whether a refused one refuses the request.
    public func append(
        _ events: [Event], refusedMerges: RefusedMerges = .reject
    ) async throws(EngineError)
        -> AppendReceipt
    {
        let events =
            events.contains(where: \.type.isMerge) ? try await checkMerges(events, refused: refusedMerges) : events
        return try await appending { try await writer.append(events) }
    }

    /// Appends behaviour events the ingest decoder packed from a request (`POST /v1/events`): as
    /// ``append(_:refusedMerges:)``, without a `String` or an ``Event`` per event. They hold no merge.
    public func append(_ packed: PackedEvents) async throws(EngineError) -> AppendReceipt {
        try await appending { try await writer.append(packed) }
    }

    /// Runs a writer append, turning its failure into ``EngineError`` `.unavailable`.
    func appending(_ append: () async throws -> AppendReceipt) async throws(EngineError) -> AppendReceipt {
        do {
            return try await append()
        } catch let error as EngineError {
            throw error
        } catch let error as AppendError {
            TallyMetrics.rejected("unavailable").increment()
            throw EngineError(error)
        } catch {
            throw EngineError(.unavailable, "\(error)")
        }
    }

    /// `contact.update`: the addresses email side effects go to, and fields to set or remove (F1, value nil).
    /// Checks the limits a single update can break (names, sizes, at most ``FieldLimits/perContact`` fields
    /// named); the limit on the contact's total is checked against its projected state and applied again by the
    /// fold, which ignores the fields that would take a contact past it.
    public func updateContact(
        _ id: String, email: String?, ownerEmail: String?, fields: [String: FieldValue?] = [:]
    ) async throws(EngineError)
        -> AppendReceipt
    {
        let event = try await Self.contactUpdate(id, email: email, ownerEmail: ownerEmail, fields: fields) {
            try self.contact(id)
        }
        return try await append([event])
    }

    /// F1: the `contact.update` event of an update by hand, checked: addresses, field names and values, and the
    /// number of fields the contact would have (`existing` reads the contact, only when fields change).
    public static func contactUpdate(
        _ id: String, email: String?, ownerEmail: String?, fields: [String: FieldValue?],
        existing: () async throws -> ContactState?
    ) async throws(EngineError) -> Event {
        guard email != nil || ownerEmail != nil || !fields.isEmpty else {
            throw EngineError(.invalid, "give \"email\", \"owner_email\" or \"fields\"", field: "email")
        }
        for (field, value) in [("email", email), ("owner_email", ownerEmail)] {
            if let value, !EmailAddress.isValid(value) {
                throw EngineError(.invalid, "\"\(value)\" is not an email address", field: field)
            }
        }
        let updates = fields.keys.sorted(by: { ByteString($0) < ByteString($1) }).map {
            FieldUpdate(name: $0, value: fields[$0] ?? nil)
        }
        for update in updates {
            if let problem = FieldLimits.problem(with: update) {
                throw EngineError(.invalid, problem, field: "fields")
            }
        }
        if !updates.isEmpty {
            let state: ContactState?
            do { state = try await existing() } catch { throw EngineError(.unavailable, "\(error)") }
            var names = Set(state?.fields.keys ?? [:].keys)
            for update in updates {
                if update.value == nil { names.remove(update.name) } else { names.insert(update.name) }
            }
            guard names.count <= FieldLimits.perContact else {
                throw EngineError(
                    .invalid,
                    "a contact has at most \(FieldLimits.perContact) fields; this update would give it "
                        + "\(names.count)", field: "fields")
            }
        }
        return Event(
            type: .contactUpdate, contact: id, at: wallClockMillis(), email: email, ownerEmail: ownerEmail,
            fields: updates)
    }

    /// Where the log and the projections stand, and why the log takes no writes when it does not.
    public func health() -> (logHead: UInt64, projected: UInt64, failure: String?) {
        (writer.head.value, projector.projected.value, writer.failure)
    }

    /// Returns once the projections include sequence number `seq` (read your own writes); throws ``EngineError``
    /// `.timedOut` after `limits.read_after_timeout`.
    public func awaitProjection(through seq: UInt64) async throws(EngineError) {
        let timeout = Duration.milliseconds(configuration.limits.readAfterTimeout)
        guard await projector.projected.wait(forAtLeast: seq, timeout: timeout) else {
            throw EngineError(
                .timedOut, "projections have not reached sequence \(seq) yet (at \(projector.projected.value))")
        }
    }

    /// The rules version the live projections fold new events with (A3; `in_force` of `GET /v1/rules`).
    public var versionFolded: Int64 { projector.rules.scorer.version }

    /// The rebuild in progress, or the last one finished since the start.
    public var rebuildProgress: RebuildProgress? { projector.rebuildProgress }
}
