import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
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
    public let log: EventLog
    public let writer: LogWriter
    public let projector: Projector
    public let outbox: OutboxDelivery
    /// Where blocking work runs, off the cooperative pool.
    public let blocking: BlockingWork
    /// Set while a rebuild request is being appended, and the sequence number of the last one appended.
    let requestingRebuild = Mutex(false)
    let lastRebuildRequest = Mutex<UInt64>(0)
    /// Largest rules file, bytes (what the log's string encoding holds).
    public static let maximumRulesBytes = 1 << 20
    /// The thread the outbox's deliveries run on, below the requests' priority (shared by every engine of the process).
    public static let background: any TaskExecutor = BackgroundExecutor(name: "tally-outbox")
    private let lock: DirectoryLock
    let logger: Logger

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
        guard rulesText.utf8.count <= Self.maximumRulesBytes else {
            throw StartupError("\(configuration.rulesPath) is larger than 1 MiB, the largest rules file Tally stores")
        }
        _ = try Self.validate(rules: rulesText, source: configuration.rulesPath, configuration: configuration)
        // Spooled uploads of imports a crash interrupted.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: configuration.dataDirectory)) ?? []
        where name.hasPrefix("import-") && name.hasSuffix(".csv") {
            try? FileManager.default.removeItem(atPath: configuration.dataDirectory + "/" + name)
        }
        log = try EventLog(directory: configuration.logDirectory, mapSize: configuration.mapSize)
        // A3: publish the rules file when it changed since it was last published from the file (a version
        // published through the API since then is not reverted). The writer thread has not started: this is the
        // only writer.
        let fileSource = Self.fileSource(configuration.rulesPath)
        let fromFile = try log.rulesEvents().last { $0.event.type == .rulesPublished && $0.event.reason == fileSource }
        if fromFile?.event.text != rulesText {
            _ = try log.append([[Self.publication(text: rulesText, source: fileSource)]])
            logger.info("rules published", metadata: ["tally.source": "\(fileSource)"])
        }
        writer = try LogWriter(log: log, logger: logger)
        projector = try Projector(
            log: log, directories: ProjectionDirectories(dataDirectory: configuration.dataDirectory),
            sessionTimeout: configuration.sessionTimeout, mapSize: configuration.mapSize,
            durability: configuration.projectionsDurability, logHead: writer.head, logger: logger)
        // From here on nothing may throw: the pool's threads must be shut down by `run()` or `deinit`.
        blocking = BlockingWork(threads: configuration.blockingThreads)
        outbox = OutboxDelivery(
            projections: projector.projections, projected: projector.projected,
            outcomes: .local(writer: writer, log: log, blocking: blocking), configuration: configuration,
            blocking: blocking,
            rulesInForce: { [projector] in projector.rules.scorer.rules },
            logger: logger)
    }

    /// The live projections.
    public var projections: LiveProjections { projector.projections }

    /// The `reason` of a publication made from the rules file at start.
    static func fileSource(_ path: String) -> String { "file \(path)" }

    static func publication(text: String, source: String) -> Event {
        Event(type: .rulesPublished, contact: "", at: wallClockMillis(), reason: source, text: text)
    }

    /// Parses a rules file and checks what the parser cannot: that every email template it names exists and
    /// parses in the templates directory (E2: a ``YAMLValidationError`` with the rules file's lines), and that
    /// every integration it pushes to is configured.
    public static func validate(rules text: String, source: String, configuration: Configuration) throws -> RuleSet {
        let templates = EmailTemplates(directory: configuration.templatesDirectory)
        let rules = try RulesParser.parse(text, file: source, templateProblem: templates.problem)
        for trigger in rules.triggers {
            for event in trigger.events {
                if case .integrationPush(let name) = event.kind, configuration.integrations[name] == nil {
                    throw StartupError(
                        "\(source): trigger \(trigger.id) event \(event.id) pushes to integration "
                            + "\"\(name)\", which is not configured under \"integrations\" in the configuration")
                }
            }
        }
        return rules
    }

    public func run() async throws {
        writer.start()
        try projector.start()
        logger.info(
            "engine started",
            metadata: ["tally.log_head": "\(writer.head.value)", "tally.projected": "\(projector.projected.value)"])
        await finishPendingErasure()
        let delivery = Task(executorPreference: Self.background) { await self.outbox.run() }
        let clock = configuration.clockInterval.map { interval in Task { await runClock(every: interval) } }
        try? await gracefulShutdown()
        clock?.cancel()
        await clock?.value
        await outbox.stop(delivery, within: .seconds(2))
        do {
            try await blocking.run {
                self.writer.stop()
                self.projector.stop()
            }
        } catch {
            writer.stop()
            projector.stop()
        }
        await blocking.shutdown()
        logger.info("engine stopped", metadata: ["tally.log_head": "\(writer.head.value)"])
    }

    /// An engine that never ran (start-up failed after it was built) still stops its threads.
    deinit { blocking.shutdownNow() }
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
