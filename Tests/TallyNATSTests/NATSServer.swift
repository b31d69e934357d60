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
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
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

/// Three real NATS servers clustered on loopback, JetStream on each with `sync_interval: always` (a stream's
/// acknowledgement comes after its replicas wrote and synced the message), as `scripts/cluster` runs them.
final class NATSCluster {
    let directory: URL
    let clientPorts: [Int]
    let routePorts: [Int]
    private(set) var processes: [Process?]

    init(size: Int = 3) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tally-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ports = try freePorts(2 * size)
        clientPorts = Array(ports[..<size])
        routePorts = Array(ports[size...])
        processes = Array(repeating: nil, count: size)
        for index in 0..<size {
            let routes = routePorts.map { "\"nats-route://127.0.0.1:\($0)\"" }.joined(separator: ", ")
            let config = """
                server_name: n\(index + 1)
                listen: 127.0.0.1:\(clientPorts[index])
                jetstream { store_dir: "\(directory.path)/n\(index + 1)", sync_interval: always }
                cluster { name: tally, listen: 127.0.0.1:\(routePorts[index]), routes: [\(routes)] }
                """
            try config.write(to: configFile(index), atomically: true, encoding: .utf8)
            try start(index)
        }
    }

    var addresses: [NATSServerAddress] { clientPorts.map { NATSServerAddress(host: "127.0.0.1", port: $0) } }

    private func configFile(_ index: Int) -> URL { directory.appendingPathComponent("n\(index + 1).conf") }

    /// Starts server `index` (again, after a kill: the same store).
    func start(_ index: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: NATSServer.binary)
        process.arguments = ["-c", configFile(index).path]
        process.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("n\(index + 1).log")
        if !FileManager.default.fileExists(atPath: log.path) {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardError = handle
        try process.run()
        processes[index] = process
    }

    /// Kills server `index` at once (SIGKILL).
    func kill(_ index: Int) {
        guard let process = processes[index], process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        processes[index] = nil
    }

    /// Waits until JetStream answers through every running server (the cluster has elected its meta leader).
    func waitUntilReady(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        for (index, address) in addresses.enumerated() where processes[index] != nil {
            while true {
                if let connection = try? await NATSConnection.connect(
                    to: [address], name: "probe", timeout: .seconds(1))
                {
                    let answer = try? await connection.request("$JS.API.INFO", payload: [], timeout: .seconds(1))
                    await connection.close()
                    if let answer, !String(decoding: answer.payload, as: UTF8.self).contains("\"error\"") { break }
                }
                guard ContinuousClock.now < deadline else {
                    throw NATSServerError(message: "the NATS cluster was not ready; see \(directory.path)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    deinit {
        for index in processes.indices { kill(index) }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// `count` distinct TCP ports free on loopback now (the kernel's choice for port 0).
func freePorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { for socket in sockets { close(socket) } }
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NATSServerError(message: "socket() failed") }
        sockets.append(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { throw NATSServerError(message: "bind() failed") }
        ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return ports
}
