import Foundation
public import TallyAPI
public import TallyCore
public import TallyStore

/// Folds the log afresh into a scratch environment and compares it with the live projections: `verify` (A5)
/// and the rebuild dry run (A4).
public enum Replays {
    /// How the fresh fold scores the log.
    public enum Mode: Sendable {
        /// As the live projections do: the rules in force at each point, from the latest rebuild on (A5).
        case asLogged
        /// Everything under one rules version (a rebuild's dry run).
        case pinned(version: Int64)
    }

    /// Folds the log into a scratch environment until it is at the live store's checkpoint, then runs
    /// `compare(live, fresh, checkpoint)`; when the live store has moved on meanwhile (`compare` returns nil), folds
    /// further and compares again. The scratch environment is removed afterwards.
    public static func compareFresh<T>(
        log: EventLog, live: () -> ProjectionStore, dataDirectory: String, mapSize: Int, sessionTimeout: Int64,
        mode: Mode, home: PartitionHome? = nil, progress: (UInt64, UInt64) -> Void = { _, _ in },
        compare: (ProjectionStore, ProjectionStore, UInt64) throws -> T?
    ) throws -> T {
        let path = dataDirectory + "/projections.scratch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try ProjectionStore(directory: path, mapSize: mapSize)
        try store.environment.deferSync()  // thrown away afterwards
        let folder: ProjectionFolder
        switch mode {
        case .pinned(let version):
            folder = try ProjectionFolder(
                log: log, emptyStore: store, sessionTimeout: sessionTimeout, version: version, until: .max,
                home: home)
        case .asLogged:
            if let rebuild = try log.rulesEvents().last(where: { $0.event.type == .rebuild }),
                let version = rebuild.event.value
            {
                folder = try ProjectionFolder(
                    log: log, emptyStore: store, sessionTimeout: sessionTimeout, version: version, until: rebuild.seq,
                    home: home)
            } else {
                folder = try ProjectionFolder(log: log, store: store, sessionTimeout: sessionTimeout, home: home)
            }
        }
        var waited = 0
        while true {
            let liveStore = live()
            let target = try liveStore.checkpoint()
            try FoldPipeline(folder, deferring: FoldPipeline.deferredContacts).run(
                through: target, size: ProjectionFolder.batchSize, progress: { progress(folder.checkpoint, target) })
            if folder.checkpoint == target, let result = try compare(liveStore, store, target) { return result }
            // The live store is mid-pass at the target (an aging pass, a trigger_existing pass or a backfill):
            // a running projector ends it within seconds; projections no daemon folds never will.
            if folder.checkpoint == target, try liveStore.checkpoint() == target {
                waited += 1
                guard waited < Self.passWaits else { throw PassUnderWayError(checkpoint: target) }
                usleep(100_000)
            }
        }
    }

    /// How many times (0.1 s apart) a comparison waits for the live store to end a pass.
    static let passWaits = 600

    /// A5: the differences between the live projections and a fresh fold of the log (empty when none).
    public static func verify(
        log: EventLog, live: () -> ProjectionStore, dataDirectory: String, mapSize: Int, sessionTimeout: Int64,
        home: PartitionHome? = nil, progress: (UInt64, UInt64) -> Void = { _, _ in }
    ) throws -> VerifyReport {
        try compareFresh(
            log: log, live: live, dataDirectory: dataDirectory, mapSize: mapSize, sessionTimeout: sessionTimeout,
            mode: .asLogged, home: home, progress: progress
        ) { live, fresh, checkpoint in
            // The fresh fold keeps its indexes by the same code: they are also checked against what they index.
            try live.differences(from: fresh, checkpoint: checkpoint).map {
                VerifyReport(checkpoint: checkpoint, differences: $0 + (try live.indexDifferences()))
            }
        }
    }

    /// A4 `--dry-run`: what a rebuild under rules `version` would change.
    public static func preview(
        version: Int64, log: EventLog, live: () -> ProjectionStore, dataDirectory: String, mapSize: Int,
        sessionTimeout: Int64, home: PartitionHome? = nil, progress: (UInt64, UInt64) -> Void = { _, _ in }
    ) throws -> ScoreComparison {
        try compareFresh(
            log: log, live: live, dataDirectory: dataDirectory, mapSize: mapSize, sessionTimeout: sessionTimeout,
            mode: .pinned(version: version), home: home, progress: progress
        ) { live, fresh, checkpoint in
            try live.compareScores(with: fresh, checkpoint: checkpoint)
        }
    }
}

/// Verification could not compare: the live projections stayed in the middle of a pass (a clock event's aging, a
/// `trigger_existing` pass or a U2 backfill) for a minute — projections that no running daemon folds.
public struct PassUnderWayError: Error, CustomStringConvertible {
    public var checkpoint: UInt64

    public var description: String {
        "the projections are in the middle of a pass started at or before sequence \(checkpoint) (aging, "
            + "trigger_existing or a URL backfill), which no running daemon is finishing: start the daemon to let it "
            + "end, then verify again"
    }
}

/// The data directory opened by a tool while no daemon runs (`tally verify` offline): holds the directory lock
/// for as long as it lives, so that a daemon cannot start meanwhile.
public final class OfflineData: Sendable {
    public let log: EventLog
    public let projections: ProjectionStore
    private let lock: DirectoryLock

    public init(configuration: Configuration) throws {
        lock = try DirectoryLock(path: configuration.dataDirectory + "/LOCK")
        log = try EventLog(directory: configuration.logDirectory, mapSize: configuration.mapSize)
        let directories = ProjectionDirectories(dataDirectory: configuration.dataDirectory)
        if try directories.projectionsMayBeTorn() {
            throw StartupError(
                "the projections in \(configuration.dataDirectory) were not synced to disk when the system stopped: "
                    + "start the daemon, which folds them again from the log")
        }
        projections = try ProjectionStore(directory: try directories.current(), mapSize: configuration.mapSize)
    }
}
