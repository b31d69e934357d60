public import CoreMetrics
import Foundation
import TallyCore

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
    static let mergesSkipped = Counter(label: "tally_merges_skipped_total")
    /// Outbox deliveries, failed attempts and entries parked as failed, by kind.
    static func outbox(_ outcome: String, kind: String) -> Counter {
        Counter(label: "tally_outbox_\(outcome)_total", dimensions: [("kind", kind)])
    }

    /// Buckets of ``batchEvents``.
    public static let batchBuckets: [Double] = [1, 10, 100, 1_000, 10_000, 100_000, 200_000]

    /// Sets the gauges read from the engine's state; called on each scrape.
    public static func sample(_ engine: TallyEngine) {
        let head = engine.writer.head.value
        let projected = engine.projector.projected.value
        Gauge(label: "tally_log_head").record(Double(head))
        Gauge(label: "tally_projected").record(Double(projected))
        Gauge(label: "tally_projector_lag_events").record(Double(head &- min(projected, head)))
        Gauge(label: "tally_projector_lag_seconds").record(engine.writer.secondsSinceCommit(after: projected))
        Gauge(label: "tally_writer_failing").record(engine.writer.failure == nil ? 0 : 1)
        let store = engine.projections.store
        if let pending = try? store.read({ try $0.pendingOutboxCount() }) {
            Gauge(label: "tally_outbox_pending").record(Double(pending))
        }
        if let running = try? store.read({ try $0.backfillPass() != nil }) {
            Gauge(label: "tally_backfill_running").record(running ? 1 : 0)
        }
        for (name, environment) in [("log", engine.log.environment), ("projections", store.environment)] {
            Gauge(label: "tally_lmdb_map_size_bytes", dimensions: [("env", name)]).record(Double(environment.mapSize))
            Gauge(label: "tally_lmdb_used_bytes", dimensions: [("env", name)]).record(Double(environment.usedBytes))
        }
        let rebuild = engine.projector.rebuildProgress
        let running = rebuild.map { $0.phase == .replaying || $0.phase == .switching } ?? false
        Gauge(label: "tally_rebuild_running").record(running ? 1 : 0)
        if let rebuild {
            Gauge(label: "tally_rebuild_replayed_events").record(Double(rebuild.replayed))
            Gauge(label: "tally_rebuild_total_events").record(Double(rebuild.total))
        }
    }
}
