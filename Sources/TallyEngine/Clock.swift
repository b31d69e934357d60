import Logging
public import TallyCore

/// Time in the log (D1): clock events appended by hand and by the daemon's ticker.
extension TallyEngine {
    /// Appends a clock event at `at`, the wall time when nil. A time earlier than the fold's now is appended and
    /// changes nothing (D1).
    public func tick(at: Int64? = nil) async throws(EngineError) -> AppendReceipt {
        try await append([try Self.clockEvent(at: at)])
    }

    /// A clock event at `at`, the wall time when nil; refused outside years 1–9999.
    public static func clockEvent(at: Int64?) throws(EngineError) -> Event {
        let at = at ?? wallClockMillis()
        guard Timestamp.validRange.contains(at) else {
            throw EngineError(.invalid, "\"at\" is outside years 1–9999", field: "at")
        }
        return Event(type: .clock, contact: "", at: at)
    }

    /// The fold's now and the awards waiting to age, with the first one's due time.
    public func clockState() throws -> (now: Int64?, aging: Int, nextDue: Int64?) {
        try Self.clockState(of: projections)
    }

    /// The fold's now in `projections` and the awards waiting to age there (a node's, or a cluster partition's).
    public static func clockState(of projections: LiveProjections) throws -> (now: Int64?, aging: Int, nextDue: Int64?)
    {
        try projections.read { txn in
            let summary = try txn.agingSummary()
            return (try txn.now(), summary.count, summary.nextDue)
        }
    }

    /// Appends a clock event with the wall time every `interval` milliseconds until cancelled (D1). A failed
    /// append is logged and the next tick tries again.
    func runClock(every interval: Int64) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: .milliseconds(interval))
            } catch {
                return
            }
            do {
                _ = try await tick()
            } catch {
                logger.warning("clock event not appended", metadata: ["tally.error": "\(error)"])
            }
        }
    }
}
