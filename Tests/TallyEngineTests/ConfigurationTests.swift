import TallyCore
import Testing

@testable import TallyEngine

/// `config/tally.yaml` (SPEC §7): every key, every bad value named by its key and line, and `TALLY_<KEY>`
/// overrides.
@Suite struct ConfigurationTests {
    /// The problems `text` has, as the daemon would print them; empty when it parses.
    func problems(_ text: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try Configuration.parse(text, file: "tally.yaml", environment: environment)
            return []
        } catch {
            return "\(error)".split(separator: "\n").map(String.init)
        }
    }

    @Test func anEmptyFileGivesTheDefaults() throws {
        let config = try Configuration.parse("", file: "tally.yaml")
        let defaults = Configuration()
        #expect(config.dataDirectory == "data")
        #expect(config.ingestSocket == "run/ingest.sock")
        #expect(config.adminSocket == "run/admin.sock")
        #expect(config.adminHTTP == nil)
        #expect(config.adminSocketMode == 0o600)
        #expect(config.adminSocketGroup == nil)
        #expect(config.rulesPath == "config/rules.yaml")
        #expect(config.templatesDirectory == "config/templates")  // E1
        #expect(config.sessionTimeout == 30 * 60_000)
        #expect(config.clockInterval == 60_000)  // D1
        #expect(config.mapSize == 64 << 20)
        #expect(config.integrations.isEmpty)
        #expect(config.smtp == defaults.smtp)
        #expect(config.outbox == Configuration.Outbox())
        #expect(config.outbox.attempts == 8 && config.outbox.backoff == 1000 && config.outbox.concurrency == 8)
        #expect(config.limits == Configuration.Limits())
        #expect(config.limits.maxBodyBytes == 16 << 20 && config.limits.maxLineBytes == 64 << 10)
        #expect(config.limits.readAfterTimeout == 5000 && config.limits.idleTimeout == 30_000)
        #expect(config.limits.maxConnections == 1024)
        #expect(config.logLevel == "info")
        #expect(config.logFormat == .logfmt)
        #expect(config.blockingThreads == 4)
    }

    @Test func everyKeyIsRead() throws {
        let config = try Configuration.parse(
            """
            data_dir: /var/lib/tally
            ingest_socket: /run/tally/ingest.sock
            admin_socket: /run/tally/admin.sock
            admin_socket_mode: "0660"
            admin_socket_group: tally-admins
            admin_http: "[::1]:8089"
            rules: /etc/tally/rules.yaml
            templates: /etc/tally/templates
            session_timeout: 15m
            clock_interval: 10s
            map_size: 1GiB
            log_level: debug
            log_format: json
            blocking_threads: 8
            limits:
              max_body: 1MiB
              max_line: 4KiB
              read_after_timeout: 2s
              idle_timeout: 1m
              max_connections: 64
            integrations:
              crm: { url: "http://127.0.0.1:9000/hook", headers: { Authorization: "Bearer x" } }
              bare: { url: "http://127.0.0.1:9001/" }
            smtp: { host: mail.example.com, port: 25, from: "scores@example.com" }
            outbox: { attempts: 3, backoff: 30s, concurrency: 2 }
            """, file: "tally.yaml")
        #expect(config.dataDirectory == "/var/lib/tally")
        #expect(config.ingestSocket == "/run/tally/ingest.sock")
        #expect(config.adminSocket == "/run/tally/admin.sock")
        #expect(config.adminSocketMode == 0o660)
        #expect(config.adminSocketGroup == "tally-admins")
        #expect(config.adminHTTP?.host == "::1" && config.adminHTTP?.port == 8089)
        #expect(config.rulesPath == "/etc/tally/rules.yaml")
        #expect(config.templatesDirectory == "/etc/tally/templates")
        #expect(config.clockInterval == 10_000)
        #expect(config.sessionTimeout == 15 * 60_000)
        #expect(config.mapSize == 1 << 30)
        #expect(config.logLevel == "debug")
        #expect(config.logFormat == .json)
        #expect(config.blockingThreads == 8)
        #expect(config.limits.maxBodyBytes == 1 << 20)
        #expect(config.limits.maxLineBytes == 4 << 10)
        #expect(config.limits.readAfterTimeout == 2000)
        #expect(config.limits.idleTimeout == 60_000)
        #expect(config.limits.maxConnections == 64)
        #expect(
            config.integrations["crm"]
                == Configuration.Integration(url: "http://127.0.0.1:9000/hook", headers: ["Authorization": "Bearer x"]))
        #expect(config.integrations["bare"] == Configuration.Integration(url: "http://127.0.0.1:9001/", headers: [:]))
        #expect(config.smtp.host == "mail.example.com" && config.smtp.port == 25)
        #expect(config.smtp.from == "scores@example.com")
        #expect(config.outbox.attempts == 3 && config.outbox.backoff == 30_000 && config.outbox.concurrency == 2)
    }

    @Test("I6 the segment section: track event names, the item property and the write key")
    func segment() throws {
        let defaults = try Configuration.parse("", file: "tally.yaml").segment
        #expect(defaults.events.isEmpty && defaults.itemProperty == "item" && defaults.writeKey == nil)
        let config = try Configuration.parse(
            """
            segment:
              write_key: wk_live_123
              item_property: asset_id
              events:
                "Whitepaper Downloaded": asset.download
                Demo Requested: form.submit
            """, file: "tally.yaml")
        #expect(config.segment.writeKey == "wk_live_123")
        #expect(config.segment.itemProperty == "asset_id")
        #expect(config.segment.events == ["Whitepaper Downloaded": .assetDownload, "Demo Requested": .formSubmit])
        #expect(config.segment.mapping.type(ofTrack: "Demo Requested") == .formSubmit)
        #expect(config.segment.mapping.itemProperty == "asset_id")
    }

    @Test("D1 clock_interval: off appends no clock events")
    func clockOff() throws {
        #expect(try Configuration.parse("clock_interval: off", file: "tally.yaml").clockInterval == nil)
    }

    @Test func theShippedExampleParses() throws {
        let config = try Configuration.load(path: examplePath, required: true, environment: [:])
        #expect(config.integrations["crm"]?.url == "http://127.0.0.1:9000/hook")
        #expect(config.segment.events["Whitepaper Downloaded"] == .assetDownload)
        #expect(config.segment.writeKey == nil)
    }

    var examplePath: String {
        let file = #filePath
        let root = file.split(separator: "/").dropLast(3).joined(separator: "/")
        return "/" + root + "/config/tally.yaml"
    }

    /// Each bad value is reported with its key and its line, and nothing else is reported.
    @Test(arguments: [
        ("log_level: loud", "\"log_level\" must be one of"),
        ("log_format: xml", "\"log_format\" must be logfmt or json"),
        ("map_size: 12 parsecs", "\"map_size\" must be a size"),
        ("map_size: 1KiB", "\"map_size\" must be a size"),
        ("session_timeout: soon", "\"session_timeout\" must be a positive duration"),
        ("clock_interval: never", "\"clock_interval\" must be a positive duration"),
        ("admin_http: 0.0.0.0:8089", "\"admin_http\" must be a loopback address"),
        ("admin_http: 127.0.0.1:99999", "\"admin_http\" must be a loopback address"),
        ("admin_socket_mode: \"0666\"", "\"admin_socket_mode\" must be octal permission bits"),
        ("admin_socket_mode: \"0400\"", "\"admin_socket_mode\" must be octal permission bits"),
        ("data_dir: [a, b]", "\"data_dir\" must be a string"),
        ("smtp: { port: 70000 }", "\"port\" must be within 1...65535"),
        ("smtp: { port: many }", "\"port\" must be an integer"),
        ("smtp: { hostname: x }", "unknown key \"hostname\""),
        ("outbox: { attempts: 0 }", "\"attempts\" must be within 1...1000"),
        ("outbox: { backoff: -1s }", "\"backoff\" must be a positive duration"),
        ("outbox: { concurrency: 0 }", "\"concurrency\" must be within 1...1000"),
        ("limits: { max_body: lots }", "\"max_body\" must be a size"),
        ("limits: { max_line: 0 }", "\"max_line\" must be a size"),
        ("limits: { read_after_timeout: 5 }", "\"read_after_timeout\" must be a positive duration"),
        ("limits: { idle_timeout: x }", "\"idle_timeout\" must be a positive duration"),
        ("limits: { max_lines: 5 }", "unknown key \"max_lines\""),
        ("limits: { max_connections: 0 }", "\"max_connections\" must be within 1...1000000"),
        ("integrations: { crm: { headers: {} } }", "\"url\" is required"),
        ("integrations: { crm: { url: x, method: PUT } }", "unknown key \"method\""),
        ("integrations: [crm]", "config.integrations must be a mapping"),
        ("log_levl: info", "unknown key \"log_levl\""),
        ("blocking_threads: 0", "\"blocking_threads\" must be within 1...256"),
        ("segment: { events: { \"Signed Up\": signup } }", "\"Signed Up\" must map to a behaviour type"),
        ("segment: { events: { \"Edit\": contact.update } }", "\"Edit\" must map to a behaviour type"),
        ("segment: { events: [a] }", "config.segment.events must be a mapping"),
        ("segment: { item_property: \"\" }", "\"item_property\" must be a property name"),
        ("segment: { write_key: \"a:b\" }", "\"write_key\" must be a non-empty string without \":\""),
        ("segment: { writekey: x }", "unknown key \"writekey\""),
    ])
    func aBadValueIsNamedWithItsLine(line: String, message: String) {
        let text = "# a comment\n" + line + "\n"
        let found = problems(text)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.hasPrefix("tally.yaml:2: ") == true, "\(found)")
        #expect(found.first?.contains(message) == true, "\(found)")
    }

    @Test func everyProblemIsReportedAtOnce() {
        let found = problems("log_level: loud\nmap_size: huge\nsmtp: { port: 0 }\n")
        #expect(found.count == 3, "\(found)")
        #expect(found.map { $0.prefix(13) } == ["tally.yaml:1:", "tally.yaml:2:", "tally.yaml:3:"])
    }

    @Test func aMissingRequiredFileIsAnError() {
        #expect(throws: YAMLValidationError.self) {
            try Configuration.load(path: "/nonexistent/tally.yaml", required: true, environment: [:])
        }
        #expect((try? Configuration.load(path: "/nonexistent/tally.yaml", required: false, environment: [:])) != nil)
    }

    @Test func environmentVariablesOverrideTopLevelKeys() throws {
        let config = try Configuration.parse(
            "data_dir: data\nlog_level: info\n", file: "tally.yaml",
            environment: [
                "TALLY_DATA_DIR": "/srv/tally", "TALLY_LOG_LEVEL": "warning", "TALLY_MAP_SIZE": "2GiB",
                "TALLY_SESSION_TIMEOUT": "10m", "TALLY_ADMIN_HTTP": "127.0.0.1:9999", "TALLY_LOG_FORMAT": "json",
                "TALLY_INGEST_SOCKET": "/tmp/i.sock", "TALLY_ADMIN_SOCKET": "/tmp/a.sock", "TALLY_RULES": "r.yaml",
                "TALLY_TEMPLATES": "/srv/templates",
                "TALLY_ADMIN_SOCKET_MODE": "0660", "TALLY_ADMIN_SOCKET_GROUP": "ops",
                "TALLY_UNRELATED": "ignored",
            ])
        #expect(config.dataDirectory == "/srv/tally")
        #expect(config.logLevel == "warning")
        #expect(config.mapSize == 2 << 30)
        #expect(config.sessionTimeout == 10 * 60_000)
        #expect(config.adminHTTP?.port == 9999)
        #expect(config.logFormat == .json)
        #expect(config.ingestSocket == "/tmp/i.sock" && config.adminSocket == "/tmp/a.sock")
        #expect(config.rulesPath == "r.yaml")
        #expect(config.templatesDirectory == "/srv/templates")
        #expect(config.adminSocketMode == 0o660 && config.adminSocketGroup == "ops")
    }

    @Test func aBadOverrideNamesItsVariable() {
        let found = problems("", environment: ["TALLY_MAP_SIZE": "big"])
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.contains("TALLY_MAP_SIZE") == true, "\(found)")
        #expect(found.first?.contains("\"map_size\" must be a size") == true, "\(found)")
    }

    @Test func sizesAndTheirUnits() {
        #expect(Configuration.parseSize("64MiB") == 64 << 20)
        #expect(Configuration.parseSize("512KiB") == 512 << 10)
        #expect(Configuration.parseSize("1 GiB") == 1 << 30)
        #expect(Configuration.parseSize("1048576") == 1 << 20)
        #expect(Configuration.parseSize("10B") == 10)
        #expect(Configuration.parseSize("-1MiB") == nil)
        #expect(Configuration.parseSize("9999999999TiB") == nil)
        #expect(Configuration.parseSize("1MB") == nil)
    }

    @Test("K1 the cluster section: NATS servers, node, partitions, replicas, lease time, duplicate window")
    func cluster() throws {
        #expect(try Configuration.parse("", file: "tally.yaml").cluster == nil)
        let config = try Configuration.parse(
            """
            cluster:
              nats: [nats://n1:4222, nats://n2:4222]
              node: node-1
              partitions: 12
              replicas: 5
              lease_time: 4s
              duplicate_window: 30m
            """, file: "tally.yaml")
        #expect(
            config.cluster
                == Configuration.Cluster(
                    nats: ["nats://n1:4222", "nats://n2:4222"], node: "node-1", partitions: 12, replicas: 5,
                    leaseTime: 4_000, duplicateWindow: 1_800_000))
        let defaults = try Configuration.parse("cluster: {nats: [n1], node: a, partitions: 3}", file: "tally.yaml")
        #expect(defaults.cluster?.replicas == 3 && defaults.cluster?.leaseTime == 10_000)
        #expect(defaults.cluster?.duplicateWindow == 600_000)
        for bad in [
            "cluster: {node: a, partitions: 3}",  // no servers
            "cluster: {nats: [n1], partitions: 3}",  // no node
            "cluster: {nats: [n1], node: a.b, partitions: 3}",  // not a subject token
            "cluster: {nats: [n1], node: a, partitions: 0}",
            "cluster: {nats: [n1], node: a, partitions: 3, replicas: 2}",
            "cluster: {nats: [n1], node: a, partitions: 3, shards: 2}",  // unknown key
        ] {
            #expect(!problems(bad).isEmpty, "\(bad)")
        }
    }
}
