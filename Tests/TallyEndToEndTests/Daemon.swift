import Foundation
import Synchronization
import TallyAPI
import TallyClient

/// A real `tally serve` process on real Unix sockets in a temporary directory, for end-to-end tests.
final class Daemon {
    let directory: String
    let configPath: String
    var process: Process?
    let logPath: String

    var ingestSocket: String { directory + "/run/ingest.sock" }
    var adminSocket: String { directory + "/run/admin.sock" }
    var dataDirectory: String { directory + "/data" }

    /// The built `tally` executable: `$TALLY_BINARY`, or `.build/debug/tally` of this package.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["TALLY_BINARY"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/tally").path
    }

    /// The example templates shipped in `config/templates` (E1), which the daemons of the tests use unless the
    /// test configures its own `templates`.
    static var repositoryTemplates: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config/templates").path
    }

    init(rules: String, extraConfig: String = "") throws {
        directory = "/tmp/tally-e2e-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = directory + "/tally.yaml"
        logPath = directory + "/daemon.log"
        try rules.write(toFile: directory + "/rules.yaml", atomically: true, encoding: .utf8)
        let config = """
            data_dir: \(directory)/data
            ingest_socket: \(directory)/run/ingest.sock
            admin_socket: \(directory)/run/admin.sock
            rules: \(directory)/rules.yaml
            \(extraConfig.contains("templates:") ? "" : "templates: \(Self.repositoryTemplates)")
            \(extraConfig.contains("map_size:") ? "" : "map_size: 1MiB")
            \(extraConfig.contains("clock_interval:") ? "" : "clock_interval: off")
            \(extraConfig)
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        if let process, process.isRunning { killAndReap(process) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a `tally` subcommand to completion; returns its exit status and standard output.
    func run(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments + ["--config", configPath]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Drain stderr concurrently so that neither pipe can fill up and block the child.
        let errorData = Mutex(Data())
        let drained = DispatchSemaphore(value: 0)
        Thread {
            let data = err.fileHandleForReading.readDataToEndOfFile()
            errorData.withLock { $0 = data }
            drained.signal()
        }.start()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        let error = errorData.withLock { $0 }
        let status = waitForExit(process, timeout: 60) ?? -1
        return (status, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }

    /// Starts `tally serve` (with `environment` added to the test's) and waits until the ingest socket answers
    /// `/health`.
    func start(environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--config", configPath]
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning {
                throw ClientError("tally serve exited with \(process.terminationStatus): \(self.log)")
            }
            if let reply = try? UnixHTTPClient(socketPath: ingestSocket).request("GET", "/health"),
                reply.status == 200, FileManager.default.fileExists(atPath: adminSocket)
            {
                return
            }
            usleep(20_000)
        }
        throw ClientError("tally serve did not answer within 30 s: \(self.log)")
    }

    /// The daemon's output so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Sends SIGTERM and waits for the exit; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard let process else { return -1 }
        kill(process.processIdentifier, SIGTERM)
        let status = waitForExit(process, timeout: 30)
        self.process = nil
        return status ?? -1
    }

    /// kill -9.
    func crash() {
        guard let process else { return }
        killAndReap(process)
        self.process = nil
    }

    func ingest() -> UnixHTTPClient { UnixHTTPClient(socketPath: ingestSocket) }
    func admin() -> UnixHTTPClient { UnixHTTPClient(socketPath: adminSocket) }

    /// Posts NDJSON lines to the ingest socket.
    func post(_ lines: [String], client: UnixHTTPClient? = nil) throws -> HTTPReply {
        let body = Array((lines.joined(separator: "\n") + "\n").utf8)
        return try (client ?? ingest()).request("POST", "/v1/events", body: body, contentType: "application/x-ndjson")
    }

    /// A contact's document from the admin socket, once the projections include `after`; nil unless 200.
    func contact(_ id: String, after: UInt64? = nil) throws -> (status: Int, document: ContactDocument?) {
        var path = "/v1/contacts/\(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? id)"
        if let after { path += "?after=\(after)" }
        let reply = try admin().request("GET", path)
        return (reply.status, reply.status == 200 ? try reply.decode(ContactDocument.self) : nil)
    }

    /// Runs `POST /v1/verify` (A5).
    func verify() throws -> VerifyReport {
        let reply = try admin().request("POST", "/v1/verify")
        guard reply.status == 200 else { throw ClientError("verify answered \(reply.status): \(reply.text)") }
        return try reply.decode(VerifyReport.self)
    }

    /// A JSON request to the admin socket.
    func adminRequest(_ method: String, _ path: String, json: String? = nil) throws -> HTTPReply {
        try admin().request(method, path, body: json.map { Array($0.utf8) } ?? [], contentType: "application/json")
    }

    /// The health document.
    func health() throws -> HealthStatus {
        try ingest().request("GET", "/health").decode(HealthStatus.self)
    }
}

extension HTTPReply {
    /// The body as the API document `type`: a renamed or missing field fails the test instead of reading as 0.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw ClientError("the answer (\(status)) is not a \(T.self): \(error); body: \(text)")
        }
    }

    /// The receipt of a 202.
    var receipt: EventReceipt { get throws { try decode(EventReceipt.self) } }

    /// The error of an error answer.
    var error: ErrorDocument.Detail { get throws { try decode(ErrorDocument.self).error } }
}

/// Output of `tally … --json` decoded as the API document `type`.
func decode<T: Decodable>(_ type: T.Type, output: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(output.utf8))
}

/// Building JSON event lines.
enum JSON {
    /// One event as a JSON line.
    static func event(
        _ type: String, contact: String, item: String? = nil, url: String? = nil, id: String? = nil, at: Int64? = nil
    ) -> String {
        var object: [String: Any] = ["type": type, "contact": contact]
        if let item { object["item"] = item }
        if let url { object["url"] = url }
        if let id { object["id"] = id }
        if let at { object["at"] = at }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
