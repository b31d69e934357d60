import Foundation
public import Logging
public import ServiceLifecycle
public import TallyCore
public import TallyStore

/// Why the engine could not start: what, and where.
public struct StartupError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The daemon's storage and workers: the event log with its group-commit writer, the projector, and the
/// outbox delivery.
///
/// A ServiceLifecycle service: listed before the HTTP servers in the service group, it starts first and stops
/// last, so every request the servers acknowledged is committed before the process exits.
public final class TallyEngine: Service, Sendable {
    public let configuration: Configuration
    public let rules: RuleSet
    public let log: EventLog
    public let projections: ProjectionStore
    public let writer: LogWriter
    public let projector: Projector
    public let outbox: OutboxDelivery
    private let lock: DirectoryLock
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        try FileManager.default.createDirectory(
            atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        lock = try DirectoryLock(path: configuration.dataDirectory + "/LOCK")
        let rulesText: String
        do {
            rulesText = try String(contentsOfFile: configuration.rulesPath, encoding: .utf8)
        } catch {
            throw StartupError("cannot read the rules file \(configuration.rulesPath): \(error.localizedDescription)")
        }
        rules = try RulesParser.parse(rulesText, file: configuration.rulesPath)
        log = try EventLog(directory: configuration.logDirectory, mapSize: configuration.mapSize)
        projections = try ProjectionStore(directory: configuration.projectionDirectory, mapSize: configuration.mapSize)
        writer = try LogWriter(log: log, logger: logger)
        projector = try Projector(
            log: log, store: projections, scorer: Scorer(rules: rules, sessionTimeout: configuration.sessionTimeout),
            logHead: writer.head, logger: logger)
        outbox = OutboxDelivery(store: projections, configuration: configuration, logger: logger)
        for trigger in rules.triggers {
            for event in trigger.events {
                if case .integrationPush(let name) = event.kind, configuration.integrations[name] == nil {
                    throw StartupError(
                        "\(configuration.rulesPath): trigger \(trigger.id) event \(event.id) pushes to integration "
                            + "\"\(name)\", which is not configured under \"integrations\" in the configuration")
                }
            }
        }
    }

    public func run() async throws {
        writer.start()
        projector.start()
        logger.info(
            "engine started",
            metadata: ["tally.log_head": "\(writer.head.value)", "tally.projected": "\(projector.projected.value)"])
        let delivery = Task { await outbox.run() }
        try? await gracefulShutdown()
        delivery.cancel()
        await delivery.value
        await outbox.shutdown()
        await offThePool {
            self.writer.stop()
            self.projector.stop()
        }
        logger.info("engine stopped", metadata: ["tally.log_head": "\(writer.head.value)"])
    }
}

/// Runs blocking work (fsyncing commits, joining threads) on a thread of its own, keeping the cooperative pool
/// free.
func offThePool<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: Result { () throws(E) -> T in try work() }) }.start()
    }
    return try result.get()
}

/// An exclusive `flock` on a file in the data directory, so that two daemons never share one store.
final class DirectoryLock: Sendable {
    private let descriptor: Int32

    init(path: String) throws {
        descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw StartupError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw StartupError("another tally daemon is using \(path); stop it first")
        }
    }

    deinit { close(descriptor) }
}
