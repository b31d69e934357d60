public import Foundation
public import TallyCore
import Yams

/// The daemon's configuration (`config/tally.yaml`, SPEC §7), with a working default for every key.
public struct Configuration: Sendable {
    /// A webhook receiver named in `integrations`.
    public struct Integration: Sendable, Equatable {
        public var url: String
        public var headers: [String: String]
    }

    /// The SMTP relay for outgoing email.
    public struct SMTP: Sendable, Equatable {
        public var host = "127.0.0.1"
        public var port = 2525
        public var from = "tally@example.com"
    }

    /// Delivery retries of the outbox.
    public struct Outbox: Sendable, Equatable {
        public var attempts = 8
        /// Milliseconds before the first retry; doubles each time.
        public var backoff: Int64 = 1000
        /// Deliveries in flight per receiver (a webhook integration's URL, or the SMTP relay): a receiver that
        /// hangs holds at most this many of its own entries, never another receiver's.
        public var concurrency = 8
    }

    /// Request size limits (SPEC §8).
    public struct Limits: Sendable, Equatable {
        public var maxBodyBytes = 16 << 20
        public var maxLineBytes = 64 << 10
        /// How long a `?after=SEQ` read waits for the projections, in milliseconds.
        public var readAfterTimeout: Int64 = 5000
        /// A connection that sends nothing for this long (between or inside requests) is closed, milliseconds.
        public var idleTimeout: Int64 = 30_000
        /// Open connections per listening socket; at the limit a new connection evicts the longest-idle one, or is
        /// refused with a 503 when every connection has a request in flight (Docs/decisions.md).
        public var maxConnections = 1024
    }

    /// Segment-compatible ingest (I6): how `track` calls map to behaviour types, and the optional write key.
    public struct Segment: Sendable, Equatable {
        /// `events`: track event names and the behaviour types they become (a behaviour type's own name maps to
        /// itself without an entry).
        public var events: [String: EventType] = [:]
        /// `item_property`: the `properties` member of a track call that holds the item.
        public var itemProperty = "item"
        /// `write_key`: when set, a request must carry it (Basic-auth user name, or the body's `writeKey`); nil
        /// accepts any.
        public var writeKey: String?

        /// The pure mapping of calls to events.
        public var mapping: SegmentMapping { SegmentMapping(events: events, itemProperty: itemProperty) }
    }

    public var dataDirectory = "data"
    public var ingestSocket = "run/ingest.sock"
    public var adminSocket = "run/admin.sock"
    /// An optional loopback TCP listener for the admin API and the UI, so that a browser can open it; nil (the
    /// default) for none.
    public var adminHTTP: (host: String, port: Int)?
    /// Permission bits of the admin socket (connecting needs write permission).
    public var adminSocketMode: UInt16 = 0o600
    /// A group given access to the admin socket (with a mode such as 0660); nil keeps the daemon's group.
    public var adminSocketGroup: String?
    public var rulesPath = "config/rules.yaml"
    /// The email templates directory (E1): `NAME.txt` and optionally `NAME.html` for each email the rules send.
    public var templatesDirectory = "config/templates"
    /// Cap of one hit's dwell (U5), milliseconds.
    public var sessionTimeout: Int64 = 30 * 60_000
    /// How often the daemon appends a clock event with the wall time (D1), milliseconds; nil (`off`) for never,
    /// when only `POST /v1/clock` moves the fold's now.
    public var clockInterval: Int64? = 60_000
    /// Initial LMDB map size of each environment, bytes; maps grow by themselves.
    public var mapSize = 64 << 20
    /// How the projections reach the disk (``ProjectionDurability``): from the log (the default) or at every
    /// commit.
    public var projectionsDurability = ProjectionDurability.log
    public var integrations: [String: Integration] = [:]
    public var smtp = SMTP()
    public var outbox = Outbox()
    public var limits = Limits()
    public var segment = Segment()
    /// Threads for blocking work (LMDB scans, replays, backups): ``BlockingWork``.
    public var blockingThreads = 4
    /// `info`, `debug`, `warning`, …
    public var logLevel = "info"
    /// `logfmt` or `json`: how `tally serve` writes its log lines.
    public var logFormat = LineLogHandler.Format.logfmt
    /// Cluster mode (SPEC K1, `Docs/cluster.md`); nil for the single-node daemon.
    public var cluster: Cluster?

    /// `cluster:`: the NATS servers, this node's name, the partitions and replicas, the lease time and the
    /// stream's duplicate window.
    public struct Cluster: Sendable, Equatable {
        public var nats: [String]
        public var node: String
        public var partitions: Int
        public var replicas: Int = 3
        /// Milliseconds.
        public var leaseTime: Int64 = 10_000
        /// Milliseconds.
        public var duplicateWindow: Int64 = 600_000
    }

    public init() {}

    /// The directory of the event log environment.
    public var logDirectory: String { dataDirectory + "/log" }

    /// Loads `path`, then applies `TALLY_<KEY>` overrides from `environment`. A missing file gives the defaults
    /// when `required` is false.
    public static func load(
        path: String, required: Bool, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Configuration {
        var text = ""
        if FileManager.default.fileExists(atPath: path) {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } else if required {
            throw YAMLValidationError(file: path, issues: [YAMLIssue(line: 0, message: "file not found")])
        }
        return try parse(text, file: path, environment: environment)
    }

    static let topLevelKeys = [
        "data_dir", "ingest_socket", "admin_socket", "admin_socket_mode", "admin_socket_group", "admin_http", "rules",
        "templates",
        "session_timeout", "clock_interval", "map_size", "integrations", "smtp",
        "outbox", "limits", "log_level", "log_format", "blocking_threads", "segment", "projections_durability",
        "cluster",
    ]

    /// Parses configuration text; every problem is reported with its line.
    public static func parse(
        _ text: String, file: String, environment: [String: String] = [:]
    ) throws
        -> Configuration
    {
        let sink = YAMLIssueSink()
        var root: Node = .mapping([:])
        if !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, let node = sink.compose(text) {
            root = node
        }
        var config = Configuration()
        if let top = YAMLMapReader(root, context: "config", sink: sink) {
            config.read(top, sink: sink)
            top.finish()
        }
        // TALLY_<KEY> overrides top-level keys, each read on its own so that a bad value names its variable.
        for key in topLevelKeys {
            let variable = "TALLY_" + key.uppercased()
            guard let value = environment[variable],
                let override = YAMLMapReader(.mapping([Node(key): Node(value)]), context: variable, sink: sink)
            else { continue }
            config.read(override, sink: sink)
        }
        try sink.check(file: file)
        return config
    }

    private mutating func read(_ top: YAMLMapReader, sink: YAMLIssueSink) {
        dataDirectory = top.string("data_dir") ?? dataDirectory
        ingestSocket = top.string("ingest_socket") ?? ingestSocket
        adminSocket = top.string("admin_socket") ?? adminSocket
        rulesPath = top.string("rules") ?? rulesPath
        templatesDirectory = top.string("templates") ?? templatesDirectory
        adminSocketGroup = top.string("admin_socket_group") ?? adminSocketGroup
        if let node = top.value("admin_http"), let text = node.scalar?.string, !text.isEmpty, text != "off" {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            let host = parts.dropLast().joined(separator: ":").trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            if parts.count >= 2, let port = Int(parts[parts.count - 1]), (1...65535).contains(port),
                ["127.0.0.1", "::1", "localhost"].contains(host)
            {
                adminHTTP = (host, port)
            } else {
                top.report(
                    node,
                    "\"admin_http\" must be a loopback address and port such as 127.0.0.1:8089 (the admin API "
                        + "has no authentication: it must not listen beyond this machine)")
            }
        }
        if let node = top.value("admin_socket_mode") {
            if let text = node.scalar?.string, let mode = UInt16(text, radix: 8), mode & ~0o770 == 0, mode & 0o200 != 0
            {
                adminSocketMode = mode
            } else {
                top.report(
                    node,
                    "\"admin_socket_mode\" must be octal permission bits for the owner and the group only, such as "
                        + "\"0600\" or \"0660\"")
            }
        }
        sessionTimeout = top.duration("session_timeout") ?? sessionTimeout
        if let node = top.value("clock_interval") {
            if node.scalar?.string == "off" {
                clockInterval = nil
            } else if let text = node.scalar?.string, let millis = DurationText.parse(text), millis > 0 {
                clockInterval = millis
            } else {
                top.report(node, "\"clock_interval\" must be a positive duration such as 1m, or off")
            }
        }
        blockingThreads = top.integer("blocking_threads", in: 1...256).map { Int($0) } ?? blockingThreads
        if let node = top.value("log_level") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            if let text = node.scalar?.string, levels.contains(text) {
                logLevel = text
            } else {
                top.report(node, "\"log_level\" must be one of \(levels.joined(separator: ", "))")
            }
        }
        if let node = top.value("log_format") {
            if let text = node.scalar?.string, let format = LineLogHandler.Format(rawValue: text) {
                logFormat = format
            } else {
                top.report(node, "\"log_format\" must be logfmt or json")
            }
        }
        if let node = top.value("projections_durability") {
            if let text = node.scalar?.string, let durability = ProjectionDurability(rawValue: text) {
                projectionsDurability = durability
            } else {
                top.report(node, "\"projections_durability\" must be log or commit")
            }
        }
        if let node = top.value("map_size") {
            if let text = node.scalar?.string, let bytes = Self.parseSize(text), bytes >= 1 << 16 {
                mapSize = bytes
            } else {
                top.report(node, "\"map_size\" must be a size such as 64MiB or 1GiB (at least 64KiB)")
            }
        }
        if let map = top.mapping("integrations") {
            for (name, node) in map.entries {
                guard let entry = YAMLMapReader(node, context: "integrations.\(name)", sink: sink) else { continue }
                let url = entry.string("url", required: true) ?? ""
                var headers: [String: String] = [:]
                if let headerMap = entry.mapping("headers") {
                    for (header, value) in headerMap.entries {
                        headers[header] = value.scalar?.string ?? ""
                    }
                }
                entry.finish()
                integrations[name] = Integration(url: url, headers: headers)
            }
        }
        if let map = top.mapping("smtp") {
            smtp.host = map.string("host") ?? smtp.host
            smtp.port = map.integer("port", in: 1...65535).map { Int($0) } ?? smtp.port
            smtp.from = map.string("from") ?? smtp.from
            map.finish()
        }
        if let map = top.mapping("outbox") {
            outbox.attempts = map.integer("attempts", in: 1...1000).map { Int($0) } ?? outbox.attempts
            outbox.backoff = map.duration("backoff") ?? outbox.backoff
            outbox.concurrency = map.integer("concurrency", in: 1...1000).map { Int($0) } ?? outbox.concurrency
            map.finish()
        }
        if let map = top.mapping("limits") {
            for (key, path) in [("max_body", \Limits.maxBodyBytes), ("max_line", \Limits.maxLineBytes)] {
                guard let node = map.value(key) else { continue }
                if let text = node.scalar?.string, let bytes = Self.parseSize(text), bytes > 0 {
                    limits[keyPath: path] = bytes
                } else {
                    map.report(node, "\"\(key)\" must be a size such as 16MiB or 64KiB")
                }
            }
            limits.readAfterTimeout = map.duration("read_after_timeout") ?? limits.readAfterTimeout
            limits.idleTimeout = map.duration("idle_timeout") ?? limits.idleTimeout
            limits.maxConnections =
                map.integer("max_connections", in: 1...1_000_000).map { Int($0) } ?? limits.maxConnections
            map.finish()
        }
        if let map = top.mapping("segment") { readSegment(map) }
        if let map = top.mapping("cluster") { readCluster(map) }
    }

    private mutating func readCluster(_ map: YAMLMapReader) {
        let nats = map.stringList("nats") ?? []
        if nats.isEmpty { map.report(map.value("nats"), "\"nats\" must list the NATS servers (nats://host:port)") }
        let node = map.string("node", required: true) ?? ""
        let allowed = { (byte: UInt8) in
            byte == 45 || byte == 95 || (48...57).contains(byte) || (65...90).contains(byte)
                || (97...122).contains(byte)
        }
        if !node.isEmpty, !node.utf8.allSatisfy(allowed) {
            map.report(map.value("node"), "\"node\" must be letters, digits, - and _ (it is a NATS subject token)")
        }
        let partitions = map.integer("partitions", in: 1...4096, required: true).map { Int($0) } ?? 1
        var cluster = Cluster(nats: nats, node: node, partitions: partitions)
        if let replicas = map.value("replicas") {
            if let text = replicas.scalar?.string, let count = Int(text), [1, 3, 5].contains(count) {
                cluster.replicas = count
            } else {
                map.report(replicas, "\"replicas\" must be 1, 3 or 5")
            }
        }
        cluster.leaseTime = map.duration("lease_time") ?? cluster.leaseTime
        cluster.duplicateWindow = map.duration("duplicate_window") ?? cluster.duplicateWindow
        map.finish()
        self.cluster = cluster
    }

    private mutating func readSegment(_ map: YAMLMapReader) {
        if let events = map.mapping("events") {
            let names = EventType.behaviours.map(\.name).joined(separator: ", ")
            for (name, node) in events.entries {
                if let text = node.scalar?.string, let type = EventType(name: text), type.isBehaviour {
                    segment.events[name] = type
                } else {
                    events.report(node, "\"\(name)\" must map to a behaviour type (\(names))")
                }
            }
        }
        if let node = map.value("item_property") {
            if let text = node.scalar?.string, !text.isEmpty, !YAMLMapReader.isNull(node) {
                segment.itemProperty = text
            } else {
                map.report(node, "\"item_property\" must be a property name such as item")
            }
        }
        if let node = map.value("write_key"), !YAMLMapReader.isNull(node) {
            if let text = node.scalar?.string, !text.isEmpty, !text.contains(":") {
                segment.writeKey = text
            } else {
                map.report(node, "\"write_key\" must be a non-empty string without \":\"")
            }
        }
        map.finish()
    }

    /// Parses `64MiB`, `1GiB`, `512KiB`, `1048576` (bytes).
    public static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40), ("B", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let value = Int(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)),
                value >= 0, value <= Int.max / factor
            else { return nil }
            return value * factor
        }
        return Int(text)
    }
}
