import Foundation
import TallyNATS

/// A real NATS server with JetStream for one test: `nats-server` (installed in `.build/nats` by
/// `scripts/install-deps --test`, or `NATS_SERVER`) on a free loopback port, its store in a temporary directory.
final class NATSServer {
    let directory: URL
    let process = Process()
    let address: NATSServerAddress

    init(config: String? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tally-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        var arguments = [
            "-js", "-sd", directory.appendingPathComponent("js").path, "-a", "127.0.0.1", "-p", "-1",
            "--ports_file_dir", directory.path,
        ]
        if let config {
            let file = directory.appendingPathComponent("nats.conf")
            try config.write(to: file, atomically: true, encoding: .utf8)
            arguments += ["-c", file.path]
        }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("nats.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        // The server writes its client port to <dir>/nats-server_<pid>.ports once it listens.
        let portsFile = directory.appendingPathComponent("nats-server_\(process.processIdentifier).ports")
        for _ in 0..<200 {
            if let data = try? Data(contentsOf: portsFile),
                let ports = try? JSONDecoder().decode([String: [String]].self, from: data),
                let url = ports["nats"]?.first, let address = NATSServerAddress(url)
            {
                self.address = address
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.terminate()
        throw NATSServerError(message: "nats-server did not start; see \(directory.path)/nats.log")
    }

    /// Kills the server at once (SIGKILL).
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["NATS_SERVER"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/nats/bin/nats-server").path
    }
}

struct NATSServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
