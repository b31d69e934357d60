import Foundation
import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle
import TallyClient
public import TallyEngine

/// Builds the two HTTP/1.1 servers on Unix sockets: ingest (mode 0666) and admin (mode 0600).
public enum Servers {
    /// The ingest and admin servers as services, in start order.
    public static func make(engine: TallyEngine, logger: Logger) throws -> [any Service] {
        let configuration = engine.configuration
        let routes = Routes(engine: engine, logger: logger)
        for path in [configuration.ingestSocket, configuration.adminSocket] { try prepareSocketPath(path) }
        let ingest = Application(
            router: routes.ingestRouter(),
            configuration: .init(address: .unixDomainSocket(path: configuration.ingestSocket), serverName: "tally"),
            onServerRunning: { _ in chmod(configuration.ingestSocket, 0o666) },
            logger: logger)
        let admin = Application(
            router: routes.adminRouter(),
            configuration: .init(address: .unixDomainSocket(path: configuration.adminSocket), serverName: "tally"),
            onServerRunning: { _ in chmod(configuration.adminSocket, 0o600) },
            logger: logger)
        return [ingest, admin]
    }

    /// Creates the socket's directory; refuses a socket that a running daemon answers on, and removes a stale
    /// one left by a crash.
    static func prepareSocketPath(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        guard FileManager.default.fileExists(atPath: path) else { return }
        if isListening(path) {
            throw StartupError("another daemon is listening on \(path); stop it first")
        }
        unlink(path)
    }

    static func isListening(_ path: String) -> Bool {
        guard let fd = try? UnixSocket.connect(to: path) else { return false }
        close(fd)
        return true
    }
}
