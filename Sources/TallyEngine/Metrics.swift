public import CoreMetrics
import Foundation
import TallyCore
public import TallyStore

/// The daemon's metrics, through swift-metrics (`tally serve` bootstraps it with swift-prometheus and serves
/// them on `GET /metrics`). Names follow Prometheus conventions; Docs/operations.md says what each one means and
/// which to alert on. Gauges read from the store (log head, lag, map use) are set when `/metrics` is scraped.
public enum TallyMetrics {
    /// Events appended, by type.
    static let accepted: [EventType: Counter] = Dictionary(
        uniqueKeysWithValues: EventType.allCases.map {
            ($0, Counter(label: "tally_events_accepted_total", dimensions: [("type", $0.name)]))
        })
    /// Events acknowledged but not appended again because their `id` was known (S6), by type.
    static let duplicated: [EventType: Counter] = Dictionary(
        uniqueKeysWithValues: EventType.allCases.map {
            ($0, Counter(label: "tally_events_duplicated_total", dimensions: [("type", $0.name)]))
        })
    /// Requests whose events were refused, by reason (`invalid`, `administrative`, `too_large`, `unavailable`).
    public static func rejected(_ reason: String) -> Counter {
        Counter(label: "tally_events_rejected_total", dimensions: [("reason", reason)])
    }
    /// Events per group commit.
    static let batchEvents = Recorder(label: "tally_commit_batch_events")
    /// Duration of a group commit (the durable write).
    static let commitDuration = Timer(label: "tally_commit_duration_seconds")
    /// Events folded into the live projections.
    static let folded = Counter(label: "tally_fold_events_total")
    /// Merges left out of a request because they would be refused (Segment's repeated `identify`, I2).
    public static let mergesSkipped = Counter(label: "tally_merges_skipped_total")
    /// Outbox deliveries, failed attempts and entries parked as failed, by kind.
    static func outbox(_ outcome: String, kind: String) -> Counter {
        Counter(label: "tally_outbox_\(outcome)_total", dimensions: [("kind", kind)])
    }

    /// Buckets of ``batchEvents``.
    public static let batchBuckets: [Double] = [1, 10, 100, 1_000, 10_000, 100_000, 200_000]

    /// Sets the gauges read from the engine's state; called on each scrape.
    public static func sample(_ engine: TallyEngine) {
        sample(log: engine.log, writer: engine.writer, projector: engine.projector)
    }

    /// Sets the gauges of one log, its writer and its projector — a node's, or with `dimensions` such as
    /// `[("partition", "3")]` one partition's on a cluster node.
    public static func sample(
        log: EventLog, writer: LogWriter, projector: Projector, dimensions: [(String, String)] = []
    ) {
        func gauge(_ label: String, _ more: [(String, String)] = []) -> Gauge {
            Gauge(label: label, dimensions: dimensions + more)
        }
        let head = writer.head.value
        let projected = projector.projected.value
        gauge("tally_log_head").record(Double(head))
        gauge("tally_projected").record(Double(projected))
        gauge("tally_projector_lag_events").record(Double(head &- min(projected, head)))
        gauge("tally_projector_lag_seconds").record(writer.secondsSinceCommit(after: projected))
        gauge("tally_writer_failing").record(writer.failure == nil ? 0 : 1)
        let store = projector.projections.store
        if let pending = try? store.read({ try $0.pendingOutboxCount() }) {
            gauge("tally_outbox_pending").record(Double(pending))
        }
        if let running = try? store.read({ try $0.backfillPass() != nil }) {
            gauge("tally_backfill_running").record(running ? 1 : 0)
        }
        for (name, environment) in [("log", log.environment), ("projections", store.environment)] {
            gauge("tally_lmdb_map_size_bytes", [("env", name)]).record(Double(environment.mapSize))
            gauge("tally_lmdb_used_bytes", [("env", name)]).record(Double(environment.usedBytes))
        }
        let rebuild = projector.rebuildProgress
        let running = rebuild.map { $0.phase == .replaying || $0.phase == .switching } ?? false
        gauge("tally_rebuild_running").record(running ? 1 : 0)
        if let rebuild {
            gauge("tally_rebuild_replayed_events").record(Double(rebuild.replayed))
            gauge("tally_rebuild_total_events").record(Double(rebuild.total))
        }
    }
}
