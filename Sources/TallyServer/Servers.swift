import Foundation
import Hummingbird
import HummingbirdCore
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
public import TallyEngine

/// Builds the two HTTP/1.1 servers on Unix sockets: ingest (mode 0666) and admin (mode 0600, or the configured
/// mode and group). See Docs/security.md.
public enum Servers {
    /// The ingest and admin servers as services, in start order.
    ///
    /// The process runs with umask 077 (set by `tally serve`), so each socket is created owner-only and only
    /// then opened up: the admin socket is never reachable by others, not even between bind and chmod.
    public static func make(engine: TallyEngine, logger: Logger) throws -> [any Service] {
        let configuration = engine.configuration
        let routes = Routes(engine: engine, logger: logger)
        for path in [configuration.ingestSocket, configuration.adminSocket] { try prepareSocketPath(path) }
        let adminGroup: gid_t? = try configuration.adminSocketGroup.map { name in
            guard let entry = getgrnam(name) else {
                throw StartupError("admin_socket_group: no group named \"\(name)\"")
            }
            return entry.pointee.gr_gid
        }
        let adminMode = mode_t(configuration.adminSocketMode)
        let limits = configuration.limits
        let sockets = configuration.adminHTTP == nil ? 2 : 3
        let maxConnections = FileDescriptorLimit.connectionsPerSocket(
            configured: limits.maxConnections, sockets: sockets, logger: logger)
        // Each socket counts its own connections; idle and slow clients are cut off (SPEC §8).
        func http1(socket: String, administrative: Bool) -> HTTPServerBuilder {
            let table = ConnectionTable(socket: socket, limit: maxConnections)
            let bodyLimits = RequestBodyLimits(events: limits.maxBodyBytes, administrative: administrative)
            return .http1(
                configuration: .init(
                    additionalChannelHandlers: [
                        ConnectionLimitHandler(table: table), ExpectContinueHandler(limits: bodyLimits, socket: socket),
                    ],
                    idleTimeout: .milliseconds(limits.idleTimeout)))
        }
        let ingest = Application(
            router: routes.ingestRouter(), server: http1(socket: "ingest", administrative: false),
            configuration: .init(address: .unixDomainSocket(path: configuration.ingestSocket), serverName: "tally"),
            onServerRunning: { _ in chmod(configuration.ingestSocket, 0o666) },
            logger: logger)
        let admin = Application(
            router: routes.adminRouter(), server: http1(socket: "admin", administrative: true),
            configuration: .init(address: .unixDomainSocket(path: configuration.adminSocket), serverName: "tally"),
            onServerRunning: { _ in
                // Failing to open the socket up leaves it owner-only (safe); say so instead of failing silently.
                if let adminGroup, chown(configuration.adminSocket, uid_t.max, adminGroup) != 0 {
                    logger.error(
                        "cannot give the admin socket to admin_socket_group; it stays in the daemon's group",
                        metadata: ["tally.error": "\(String(cString: strerror(errno)))"])
                }
                if chmod(configuration.adminSocket, adminMode) != 0 {
                    logger.error(
                        "cannot set admin_socket_mode on the admin socket",
                        metadata: ["tally.error": "\(String(cString: strerror(errno)))"])
                }
            },
            logger: logger)
        guard let http = configuration.adminHTTP else { return [ingest, admin] }
        let loopback = Application(
            router: routes.adminRouter(loopbackPort: http.port),
            server: http1(socket: "admin_http", administrative: true),
            configuration: .init(address: .hostname(http.host, port: http.port), serverName: "tally"),
            logger: logger)
        return [ingest, admin, loopback]
    }

    /// Creates the socket's directory (mode 0755); refuses a directory that others may write to (they could
    /// replace the sockets), a socket that a running daemon answers on, and removes a stale one left by a crash.
    static func prepareSocketPath(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            var info = stat()
            if stat(directory, &info) == 0, info.st_mode & 0o022 != 0, info.st_mode & S_ISVTX == 0 {
                throw StartupError(
                    "the socket directory \(directory) is writable by other users, who could replace the sockets; "
                        + "run chmod go-w \(directory)")
            }
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw StartupError("\(path) exists and is not a socket; refusing to replace it")
        }
        if isListening(path) {
            throw StartupError("another daemon is listening on \(path); stop it first")
        }
        unlink(path)
    }

    /// Whether a process accepts connections on the Unix socket at `path` (a connection is opened and closed).
    static func isListening(_ path: String) -> Bool {
        let connected = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: path)
        guard let channel = try? connected.wait() else { return false }
        try? channel.close().wait()
        return true
    }
}
