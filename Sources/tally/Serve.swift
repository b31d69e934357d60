import ArgumentParser
import CGlibc
import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import TallyCluster
import TallyEngine
import TallyServer
import UnixSignals

/// `tally serve`: runs the daemon until SIGTERM or SIGINT, then shuts down gracefully.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: the event log, the projector and the two sockets.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let configuration = try options.loadConfiguration()
        // Files and sockets are created owner-only; the servers open up what must be shared (Docs/security.md).
        umask(0o077)
        // Two malloc arenas rather than glibc's 8 per core: the daemon's many threads (event loops, the cooperative
        // pool, writer, projector, rebuild, blocking pool) each took an arena of their own, whose freed pages stay
        // in the process (Docs/decisions.md, issue 16). MALLOC_ARENA_MAX in the environment still decides.
        if ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil { mallopt(M_ARENA_MAX, 2) }
        MetricsSystem.bootstrap(MetricsExport.factory())
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let format = configuration.logFormat
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, level: level) }
        var logger = Logger(label: "tally")
        logger.logLevel = level
        if let cluster = configuration.cluster {
            try await serveClusterNode(cluster, configuration: configuration, logger: logger)
            return
        }
        let engine = try TallyEngine(configuration: configuration, logger: logger)
        let servers = try Servers.make(engine: engine, logger: logger)
        logger.info(
            "tally serving",
            metadata: [
                "tally.ingest_socket": "\(configuration.ingestSocket)",
                "tally.admin_socket": "\(configuration.adminSocket)",
                "tally.data_dir": "\(configuration.dataDirectory)",
            ])
        // The engine comes first: it starts before the servers and, shutdown running in reverse, stops after
        // them, so everything they acknowledged is committed.
        let group = ServiceGroup(
            services: [engine] + servers, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }

    /// Cluster mode (SPEC §13, `Docs/cluster.md`): the node, and the part of the API it has so far on the sockets.
    func serveClusterNode(_ cluster: Configuration.Cluster, configuration: Configuration, logger: Logger) async throws {
        let rules = try String(contentsOfFile: configuration.rulesPath, encoding: .utf8)
        let source = "file \(configuration.rulesPath)"
        let ruleSet = try TallyEngine.validate(rules: rules, source: source, configuration: configuration)
        let node = try ClusterNode(
            settings: try ClusterSettings(cluster), dataDirectory: configuration.dataDirectory,
            sessionTimeout: configuration.sessionTimeout, mapSize: configuration.mapSize, logger: logger,
            rulesFile: (rules, source), delivery: configuration,
            readAfterTimeout: .milliseconds(configuration.limits.readAfterTimeout),
            clockInterval: configuration.clockInterval.map { .milliseconds($0) })
        let servers = try ClusterServers.make(
            node: node, configuration: configuration, rules: ruleSet, logger: logger)
        logger.info(
            "tally cluster node serving",
            metadata: [
                "tally.node": "\(cluster.node)", "tally.partitions": "\(cluster.partitions)",
                "tally.ingest_socket": "\(configuration.ingestSocket)",
                "tally.admin_socket": "\(configuration.adminSocket)",
            ])
        let group = ServiceGroup(
            services: [ClusterNodeService(node: node)] + servers, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        try await group.run()
    }
}
