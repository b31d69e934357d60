import Foundation
import Synchronization
import TallyAPI
import TallyClient
import Testing

/// Connections (SPEC §8, issue 15 points 7 and 8): `limits.max_connections` per socket, and
/// `Expect: 100-continue` as curl sends it.
@Suite("Connections: the limit per socket and Expect: 100-continue, end to end")
struct ConnectionTests {
    /// An NDJSON body of `count` page hits, each line about 120 bytes.
    static func pageHits(_ count: Int, prefix: String) -> String {
        (0..<count).map { index in
            JSON.event(
                "url.hit", contact: "\(prefix)-\(index % 100)",
                url: "https://example.com/pricing/plans/enterprise/compare?ref=newsletter&n=\(index)",
                id: "\(prefix)-\(index)")
        }.joined(separator: "\n") + "\n"
    }

    /// Runs curl; returns the `-w` output and curl's verbose trace.
    static func curl(_ arguments: [String]) throws -> (written: String, trace: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable(["curl"]) ?? "/usr/bin/curl")
        process.arguments = ["-sS", "-v", "--max-time", "60"] + arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let trace = Mutex(Data())
        let drained = DispatchSemaphore(value: 0)
        Thread {
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            trace.withLock { $0 = data }
            drained.signal()
        }.start()
        let written = output.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        _ = waitForExit(process, timeout: 90)
        return (String(decoding: written, as: UTF8.self), String(decoding: trace.withLock { $0 }, as: UTF8.self))
    }

    @Test("§8 curl's default Expect: 100-continue on a >1 MB NDJSON post is answered on every socket, then 202")
    func expectContinueIsAnswered() throws {
        let port = freeLoopbackPort()
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "admin_http: 127.0.0.1:\(port)")
        try daemon.start()
        defer { daemon.stop() }
        try waitForPort(port)
        let targets: [(name: String, arguments: [String])] = [
            ("ingest", ["--unix-socket", daemon.ingestSocket, "http://tally/v1/events"]),
            ("admin", ["--unix-socket", daemon.adminSocket, "http://tally/v1/events"]),
            ("admin_http", ["http://127.0.0.1:\(port)/v1/events"]),
        ]
        for (index, target) in targets.enumerated() {
            let body = Self.pageHits(10_000, prefix: "hit\(index)")
            #expect(body.utf8.count > 1_100_000)  // over curl's 1 MiB threshold for Expect
            let file = daemon.directory + "/hits-\(index).ndjson"
            try body.write(toFile: file, atomically: true, encoding: .utf8)
            let (written, trace) = try Self.curl(
                [
                    "-o", daemon.directory + "/reply-\(index).json", "-w", "%{http_code} %{size_upload}",
                    "-H", "Content-Type: application/x-ndjson", "--data-binary", "@" + file,
                ] + target.arguments)
            #expect(trace.contains("Expect: 100-continue"), "curl did not send Expect on \(target.name)")
            #expect(trace.contains("< HTTP/1.1 100 Continue"), "no 100 Continue on \(target.name): \(trace)")
            // curl says this when it gave up waiting for the 100 and sent the body anyway.
            #expect(!trace.contains("Done waiting for 100-continue"), "curl waited on \(target.name)")
            #expect(written == "202 \(body.utf8.count)", "\(target.name): \(written)")
            let replyFile = URL(fileURLWithPath: daemon.directory + "/reply-\(index).json")
            let reply = try JSONDecoder().decode(EventReceipt.self, from: try Data(contentsOf: replyFile))
            #expect(reply.accepted == 10_000, "\(target.name): \(reply)")
        }
    }

    @Test("§8 a declared length over limits.max_body with Expect: 100-continue gets 413 before the body is sent")
    func oversizedDeclaredLengthIsRefusedAtOnce() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "limits:\n  max_body: 1MiB")
        try daemon.start()
        defer { daemon.stop() }
        let body = Self.pageHits(10_000, prefix: "big")
        let file = daemon.directory + "/big.ndjson"
        try body.write(toFile: file, atomically: true, encoding: .utf8)
        let (written, trace) = try Self.curl([
            "-o", daemon.directory + "/reply.json", "-w", "%{http_code} %{size_upload}",
            "-H", "Content-Type: application/x-ndjson", "--data-binary", "@" + file,
            "--unix-socket", daemon.ingestSocket, "http://tally/v1/events",
        ])
        #expect(trace.contains("Expect: 100-continue"))
        #expect(!trace.contains("100 Continue"))
        // The 413 came before a byte of the body was sent.
        #expect(written == "413 0", "\(written): \(trace)")
        let replyFile = URL(fileURLWithPath: daemon.directory + "/reply.json")
        let error = try JSONDecoder().decode(ErrorDocument.self, from: try Data(contentsOf: replyFile)).error
        #expect(error.status == 413)
        #expect(error.message.contains("1048576"), "\(error)")
        // The daemon still serves, and a body under the limit (curl sends no Expect) is taken.
        #expect(try daemon.post([JSON.event("email.open", contact: "after-413", item: "n")]).status == 202)
    }

    /// Polls `/metrics` on the admin socket until `sample` (e.g. `tally_connections_busy{socket=ingest}`)
    /// reaches `value`; fails after a generous wait.
    static func waitForMetric(_ daemon: Daemon, _ sample: String, atLeast value: Double) throws {
        for _ in 0..<1500 {
            if let current = try MetricsTests.scrape(daemon)[sample], current >= value { return }
            usleep(20_000)
        }
        throw ClientError("\(sample) never reached \(value)")
    }

    @Test("§8 at limits.max_connections a new connection evicts the longest-idle one and is served")
    func idleConnectionIsEvicted() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "limits:\n  max_connections: 2")
        try daemon.start()
        defer { daemon.stop() }
        let health = "GET /health HTTP/1.1\r\nHost: tally\r\n\r\n"
        let first = try RawConnection(daemon.ingestSocket)
        #expect(try first.exchange(health).hasPrefix("HTTP/1.1 200"))
        let second = try RawConnection(daemon.ingestSocket)
        #expect(try second.exchange(health).hasPrefix("HTTP/1.1 200"))
        // Both are idle keep-alive connections: the table is full.
        let reply = try daemon.post([JSON.event("email.open", contact: "evict", item: "n")])
        #expect(reply.status == 202)
        #expect(first.readToEnd() == "", "the longest-idle connection was closed, without an answer")
        #expect(try second.exchange(health).hasPrefix("HTTP/1.1 200"), "the other idle one still serves")
        #expect(try MetricsTests.scrape(daemon)["tally_connections_evicted_total{socket=ingest}"] ?? 0 >= 1)
    }

    @Test("§8 when every connection has a request in flight, a new one is refused with 503 and the others finish")
    func busyConnectionsAreNotEvicted() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "limits:\n  max_connections: 2")
        try daemon.start()
        defer { daemon.stop() }
        let line = JSON.event("email.open", contact: "busy", item: "n") + "\n"
        let head =
            "POST /v1/events HTTP/1.1\r\nHost: tally\r\nContent-Type: application/x-ndjson\r\n"
            + "Content-Length: \(line.utf8.count)\r\n\r\n"
        let busy = try (0..<2).map { _ in try RawConnection(daemon.ingestSocket) }
        // Each sends its request head and half its body, and so has a request in flight.
        for connection in busy { try connection.send(head + String(line.prefix(10))) }
        try Self.waitForMetric(daemon, "tally_connections_busy{socket=ingest}", atLeast: 2)
        let refused = try RawConnection(daemon.ingestSocket)
        let answer = try #require(refused.readToEnd(), "the refused connection is closed")
        #expect(answer.hasPrefix("HTTP/1.1 503"), "\(answer)")
        #expect(answer.lowercased().contains("retry-after: 1"))
        #expect(answer.contains("max_connections"))
        for connection in busy {
            let reply = try connection.exchange(String(line.dropFirst(10)))
            #expect(reply.hasPrefix("HTTP/1.1 202"), "\(reply)")
        }
        #expect(try MetricsTests.scrape(daemon)["tally_connections_refused_total{socket=ingest}"] == 1)
    }

    @Test("§8 while other clients hold 30,000 connections to the ingest socket, a new client is served, memory bounded")
    func floodOfIdleConnections() throws {
        // A long idle timeout, so that only the connection limit closes the flood's connections.
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "limits:\n  idle_timeout: 10m")
        try daemon.start()
        defer { daemon.stop() }
        let pid = try #require(daemon.process?.processIdentifier)
        #expect(try daemon.post([JSON.event("email.open", contact: "warm", item: "n")]).status == 202)
        let before = try Self.residentBytes(pid)
        let flood = try ConnectionFlood(socket: daemon.ingestSocket, connections: 30_000)
        defer { flood.stop() }
        // The well-behaved client: its post is answered while the flood holds its connections.
        let client = UnixHTTPClient(socketPath: daemon.ingestSocket, timeoutSeconds: 120)
        let reply = try daemon.post([JSON.event("email.open", contact: "served", item: "n")], client: client)
        #expect(reply.status == 202, "\(reply.text)")
        let after = try Self.residentBytes(pid)
        let metrics = try MetricsTests.scrape(daemon)
        #expect((metrics["tally_connections_open{socket=ingest}"] ?? .infinity) <= 1024)
        #expect((metrics["tally_connections_evicted_total{socket=ingest}"] ?? 0) >= 30_000 - 1024)
        // Measured (Docs/reliability.md): the flood adds about 21 MiB with the limit (debug build); without it
        // each held connection costs about 14 KiB, 30,000 about 420 MiB (and more descriptors than allowed here).
        #expect(after - before < 64 << 20, "RSS grew from \(before >> 20) MiB to \(after >> 20) MiB")
        print("ingest flood of 30,000 connections: RSS \(before >> 10) KiB before, \(after >> 10) KiB after")
    }

    @Test("§8 a limits.max_connections out of range stops the start, naming the key")
    func badMaxConnectionsIsRefused() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "limits:\n  max_connections: 0")
        let result = try daemon.run(["serve"])
        #expect(result.status != 0)
        #expect((result.error + result.output).contains("max_connections"), "\(result.error)")
    }

    /// Starts `tally serve` after `ulimit` runs with `limit` (e.g. `-S -n 512`), as the daemon's process.
    static func start(_ daemon: Daemon, ulimit limit: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", "ulimit \(limit) && exec \"$0\" serve --config \"$1\"", Daemon.binary, daemon.configPath,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        daemon.process = process
        for _ in 0..<1500 {
            if (try? daemon.ingest().request("GET", "/health"))?.status == 200 { return }
            usleep(20_000)
        }
        throw ClientError("tally serve did not answer under ulimit \(limit)")
    }

    @Test("§8 the daemon raises its soft open-file limit to the hard limit, so that connections do not run out")
    func openFileLimitIsRaised() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try Self.start(daemon, ulimit: "-S -n 512")
        defer { daemon.stop() }
        let pid = try #require(daemon.process?.processIdentifier)
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 2 && numbers[0] == numbers[1] && numbers[0] > 512, "\(line)")
    }

    @Test(
        "§8 a max_connections beyond the open-file limit is lowered to fit, and a flood past it cannot crash the daemon"
    )
    func connectionsFitTheOpenFileLimit() throws {
        // Running out of descriptors is fatal (libdispatch traps), so the limit must keep the daemon below it.
        let daemon = try Daemon(
            rules: endToEndRules, extraConfig: "limits:\n  max_connections: 100000\n  idle_timeout: 10m")
        try Self.start(daemon, ulimit: "-n 2048")
        defer { daemon.stop() }
        let flood = try ConnectionFlood(socket: daemon.ingestSocket, connections: 5_000)
        defer { flood.stop() }
        let client = UnixHTTPClient(socketPath: daemon.ingestSocket, timeoutSeconds: 120)
        let reply = try daemon.post([JSON.event("email.open", contact: "fits", item: "n")], client: client)
        #expect(reply.status == 202)
        #expect(daemon.process?.isRunning == true)
        let metrics = try MetricsTests.scrape(daemon)
        // (2,048 descriptors − 512 in reserve) / 2 sockets.
        #expect(metrics["tally_connections_open{socket=ingest}"] ?? .infinity <= 768)
        #expect(metrics["tally_connections_evicted_total{socket=ingest}"] ?? 0 >= 5_000 - 768)
    }

    /// VmRSS of a process, bytes.
    static func residentBytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw ClientError("no VmRSS in /proc/\(pid)/status") }
        return kib << 10
    }
}

/// A raw connection to a Unix socket, for tests that hold connections open or send partial requests.
final class RawConnection {
    let fd: Int32

    init(_ path: String) throws {
        fd = try UnixSocket.connect(to: path)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            // MSG_NOSIGNAL: a connection the daemon closed is an error here, not SIGPIPE for the test process.
            let count = bytes[sent...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { throw ClientError("write: \(String(cString: strerror(errno)))") }
            sent += count
        }
    }

    /// Sends `text` and reads one response whose body is small enough to arrive with its head.
    func exchange(_ text: String) throws -> String {
        try send(text)
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { throw ClientError("no response (read returned \(count))") }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    /// Everything until the daemon closes the connection; nil when it is still open after 30 s.
    func readToEnd() -> String? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count == 0 { return String(decoding: received, as: UTF8.self) }
            guard count > 0 else { return nil }
            received += buffer[..<count]
        }
    }
}

/// Python processes that open `connections` connections to a Unix socket and hold them, silent, until stopped;
/// as many processes as the open-file limit needs.
final class ConnectionFlood {
    private var processes: [(process: Process, input: Pipe)] = []

    static let script = """
        import resource, socket, sys
        path, count = sys.argv[1], int(sys.argv[2])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = count + 64
        if hard != resource.RLIM_INFINITY and hard < want:
            hard = want  # works for root only; the caller sized the processes to the hard limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        held = []
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            held.append(s)
        print("held", len(held), flush=True)
        sys.stdin.read()
        """

    init(socket path: String, connections: Int) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let perProcess = min(10_000, Int(clamping: limit.rlim_max) - 64)
        var remaining = connections
        while remaining > 0 {
            let count = min(perProcess, remaining)
            remaining -= count
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", Self.script, path, String(count)]
            let input = Pipe()
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            processes.append((process, input))
            // One process at a time, so that the connections arrive in order.
            var said = Data()
            while !said.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                said += chunk
            }
            let line = String(decoding: said, as: UTF8.self)
            guard line.hasPrefix("held \(count)") else { throw ClientError("the flood helper said \"\(line)\"") }
        }
    }

    func stop() {
        for (process, input) in processes {
            try? input.fileHandleForWriting.close()
            if waitForExit(process, timeout: 30) == nil { killAndReap(process) }
        }
        processes = []
    }

    deinit { stop() }
}
