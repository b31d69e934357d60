public import TallyAPI
public import TallyCore

/// The engine's side of the HTTP API that is not administration: ingest, health and reading your own writes.
/// Every route goes through these methods (and those of `AdminOperations.swift`); none reaches into the writer,
/// the projector or the store.
extension TallyEngine {
    /// Appends events (already decoded and validated) and returns once they are durable (S6: events whose `id`
    /// is already in the log are acknowledged as duplicates): the one path of every event into the log. Throws
    /// ``EngineError`` `.unavailable` when the log cannot take them; nothing of the request is appended then.
    public func append(_ events: [Event]) async throws(EngineError) -> AppendReceipt {
        try await appending { try await writer.append(events) }
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

    /// `contact.update`: the addresses email side effects go to.
    public func updateContact(
        _ id: String, email: String?, ownerEmail: String?
    ) async throws(EngineError)
        -> AppendReceipt
    {
        guard email != nil || ownerEmail != nil else {
            throw EngineError(.invalid, "give \"email\" or \"owner_email\"", field: "email")
        }
        for (field, value) in [("email", email), ("owner_email", ownerEmail)] {
            if let value, !EmailAddress.isValid(value) {
                throw EngineError(.invalid, "\"\(value)\" is not an email address", field: field)
            }
        }
        return try await append([
            Event(type: .contactUpdate, contact: id, at: wallClockMillis(), email: email, ownerEmail: ownerEmail)
        ])
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
