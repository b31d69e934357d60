import Foundation
import TallyAPI
import TallyClient
import TallyCore
import TallyStore
import Testing

/// Full disks, growing maps and hostile clients (SPEC §8), through the real daemon.
@Suite("Full disk and hostile clients, end to end")
struct ReliabilityTests {
    /// Reads until the peer closes the connection or `timeout` seconds pass; true when it closed.
    static func waitForClose(_ fd: Int32, timeout: Int) -> Bool {
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }

    static func send(_ fd: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    @Test(
        "SPEC §8 oversized bodies and lines, invalid UTF-8, deep nesting, idle, slow and vanishing clients: each is refused or cut off, and a well-behaved client is served meanwhile"
    )
    func hostileClients() throws {
        let daemon = try Daemon(
            rules: endToEndRules, extraConfig: "limits: { max_body: 64KiB, max_line: 1KiB, idle_timeout: 1s }")
        try daemon.start()
        defer { daemon.stop() }
        let head = try daemon.health().logHead
        let client = daemon.ingest()
        let big = String(repeating: JSON.event("email.open", contact: "c", item: "x") + "\n", count: 2000)
        #expect(
            try client.request("POST", "/v1/events", body: Array(big.utf8), contentType: "application/x-ndjson").status
                == 413)
        let longLine = JSON.event("email.open", contact: "c", item: String(repeating: "x", count: 250))
            .replacingOccurrences(
                of: "}", with: #","pad":"\#(String(repeating: "p", count: 1100))"}"#)
        let long = try daemon.post([longLine])
        #expect(long.status == 400)
        #expect(long.text.contains("longer than 1024 bytes"))
        var invalid = Array(#"{"type":"email.open","contact":"c"#.utf8) + [0xC3, 0x28] + Array(#"","item":"x"}"#.utf8)
        invalid.append(10)
        #expect(
            try client.request("POST", "/v1/events", body: invalid, contentType: "application/x-ndjson").status == 400)
        let nested =
            #"{"type":"email.open","contact":"c","item":"x","deep":"# + String(repeating: "[", count: 100)
            + String(repeating: "]", count: 100) + "}"
        let deep = try daemon.post([nested])
        #expect(deep.status == 400)
        #expect(deep.text.contains("deep"))

        // 300 idle connections, a slow-loris that stops mid-header, and one that vanishes mid-body.
        var idle: [Int32] = []
        for _ in 0..<300 { if let fd = try? UnixSocket.connect(to: daemon.ingestSocket) { idle.append(fd) } }
        let slow = try UnixSocket.connect(to: daemon.ingestSocket)
        Self.send(slow, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Le")
        let vanishing = try UnixSocket.connect(to: daemon.ingestSocket)
        Self.send(
            vanishing,
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{\"type\":"
        )
        close(vanishing)
        // Meanwhile a well-behaved client is served.
        for index in 0..<20 {
            let reply = try daemon.post([JSON.event("email.open", contact: "good", item: "x", id: "good-\(index)")])
            #expect(reply.status == 202)
        }
        #expect(Self.waitForClose(slow, timeout: 10), "the slow-loris client is cut off")
        #expect(idle.allSatisfy { Self.waitForClose($0, timeout: 10) }, "idle connections are closed")
        for fd in idle + [slow] { close(fd) }
        #expect(try daemon.health().status == "ok")
        #expect(try daemon.health().logHead == head + 20, "only the good client's events")
    }

    @Test(
        "SPEC §8 a full disk answers 503 with a clear message, loses nothing acknowledged, and ingest resumes when space is freed"
    )
    func fullDisk() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "map_size: 256KiB")
        try FileManager.default.createDirectory(atPath: daemon.dataDirectory, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=3m", "tmpfs", daemon.dataDirectory]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            print("full-disk test skipped: cannot mount a tmpfs here (needs root)")
            return
        }
        defer {
            let unmount = Process()
            unmount.executableURL = URL(fileURLWithPath: "/bin/umount")
            unmount.arguments = [daemon.dataDirectory]
            try? unmount.run()
            unmount.waitUntilExit()
        }
        let ballast = daemon.dataDirectory + "/ballast"
        FileManager.default.createFile(atPath: ballast, contents: Data(count: 1 << 20))
        try daemon.start()
        var acknowledged: [String] = []
        var refusal: HTTPReply?
        for batch in 0..<400 where refusal == nil {
            let ids = (0..<200).map { "d-\(batch)-\($0)" }
            let reply = try daemon.post(
                ids.map {
                    JSON.event("asset.download", contact: "c-\($0.hashValue & 63)", item: "whitepaper-2026", id: $0)
                })
            if reply.status == 202 { acknowledged += ids } else { refusal = reply }
        }
        let refused = try #require(refusal, "the 3 MiB disk never filled")
        #expect(refused.status == 503)
        #expect(refused.text.contains("disk is full"), "\(refused.text)")
        #expect(try daemon.ingest().request("GET", "/health").decode(HealthStatus.self).status == "unavailable")
        #expect(daemon.process?.isRunning == true, "the daemon stays up")

        try FileManager.default.removeItem(atPath: ballast)
        try AuditEndToEndTests.waitUntil(timeout: 30) {
            try daemon.post([JSON.event("asset.download", contact: "after", item: "w", id: "after-free")]).status == 202
        }
        acknowledged.append("after-free")
        daemon.stop()
        let log = try EventLog(directory: daemon.dataDirectory + "/log", mapSize: 1 << 20)
        var seen: [String: Int] = [:]
        try log.forEach { logged in
            if let id = logged.event.id { seen[id, default: 0] += 1 }
            return true
        }
        #expect(acknowledged.allSatisfy { seen[$0] == 1 }, "every acknowledged event is in the log once")
        #expect(seen.count == acknowledged.count, "nothing of a refused request was appended")
        print("full disk: \(acknowledged.count) events acknowledged before and after the disk filled")
    }
}
