import Foundation
import Synchronization
import TallyAPI
import TallyClient
import Testing

/// L1 and L2 through the real daemon: a list walked page by page under load, the change feed as Server-Sent
/// Events across a disconnect and a restart, and the CLI.
@Suite("Lists and the change feed, end to end")
struct ListEndToEndTests {
    static let rules = """
        actions:
          - { id: download, type: asset.download, delta: 10, repeatable: true }
        triggers:
          - { id: mql, min_points: 30, events: [{ id: tag, type: tags.modify, add: [mql] }] }
        """

    /// Posts one download for each of `count` contacts `prefix-000000`…, 10,000 per request; returns the last seq.
    static func seed(_ daemon: Daemon, prefix: String, count: Int, times: Int = 1) throws -> UInt64 {
        var last: UInt64 = 0
        for start in stride(from: 0, to: count, by: 10_000) {
            var lines: [String] = []
            for n in start..<min(start + 10_000, count) {
                let contact = "\(prefix)-" + String(format: "%06d", n)
                for _ in 0..<times { lines.append(JSON.event("asset.download", contact: contact, item: "x")) }
            }
            let reply = try daemon.post(lines)
            #expect(reply.status == 202)
            last = try reply.receipt.lastSeq ?? last
        }
        return last
    }

    @Test("L1 a walk over 100,000 contacts page by page sees each exactly once while events keep arriving; verify")
    func walkUnderLoad() throws {
        let daemon = try Daemon(rules: Self.rules, extraConfig: "map_size: 64MiB\nlimits: { read_after_timeout: 60s }")
        try daemon.start()
        defer { daemon.stop() }
        let seeded = try Self.seed(daemon, prefix: "c", count: 100_000)
        _ = try daemon.contact("c-000000", after: seeded)

        // Meanwhile: more downloads for the walked contacts (their scores and tags change), and new contacts.
        let stop = Flag()
        let done = DispatchSemaphore(value: 0)
        let socket = daemon.ingestSocket
        Thread {
            let client = UnixHTTPClient(socketPath: socket)
            var round = 0
            while !stop.isSet {
                var lines: [String] = []
                for n in 0..<500 {
                    let walked = "c-" + String(format: "%06d", (round * 997 + n) % 100_000)
                    let contact: String = n % 2 == 0 ? walked : "new-\(round)-\(n)"
                    lines.append(JSON.event("asset.download", contact: contact, item: "x"))
                }
                _ = try? client.request(
                    "POST", "/v1/events", body: Array(lines.joined(separator: "\n").utf8),
                    contentType: "application/x-ndjson")
                round += 1
            }
            done.signal()
        }.start()
        var seen: [String: Int] = [:]
        var cursor: String?
        var pages = 0
        repeat {
            let path = "/v1/contacts?sort=id&limit=1000" + (cursor.map { "&cursor=\($0)" } ?? "")
            let page = try daemon.admin().request("GET", path).decode(ContactListDocument.self)
            for item in page.contacts { seen[item.contact, default: 0] += 1 }
            cursor = page.next
            pages += 1
        } while cursor != nil
        stop.set()
        done.wait()
        let walked = seen.filter { $0.key.hasPrefix("c-") }
        #expect(walked.count == 100_000)
        #expect(walked.values.allSatisfy { $0 == 1 })
        #expect(seen.values.allSatisfy { $0 == 1 })
        #expect(pages >= 100)
        // The MQL list: only contacts at 30 or more, highest first.
        _ = try daemon.contact("c-000000", after: try daemon.health().logHead)
        let mql = try daemon.admin().request("GET", "/v1/contacts?tag=mql&limit=100").decode(ContactListDocument.self)
        #expect(mql.contacts.allSatisfy { $0.points >= 30 && $0.tags == ["mql"] })
        #expect(mql.contacts.map(\.points) == mql.contacts.map(\.points).sorted(by: >))
        #expect(try daemon.verify().passed)
    }

    /// Reads the SSE stream of `/v1/changes` with curl for `seconds`, resuming from `lastEventID`; returns the events'
    /// ids and data lines.
    static func stream(_ daemon: Daemon, lastEventID: String?, seconds: Int) throws -> [(id: String, data: String)] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = [
            "-sN", "--max-time", "\(seconds)", "--unix-socket", daemon.adminSocket, "-H", "Accept: text/event-stream",
        ]
        if let lastEventID { arguments += ["-H", "Last-Event-ID: \(lastEventID)"] }
        process.arguments = arguments + ["http://localhost/v1/changes"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var events: [(id: String, data: String)] = []
        for block in output.components(separatedBy: "\n\n") {
            var id: String?
            var data: String?
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            if let id, let data { events.append((id, data)) }
        }
        return events
    }

    @Test("L2 an SSE client that disconnects, a daemon restart, and Last-Event-ID gets exactly the rest")
    func feedAcrossRestart() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        _ = try Self.seed(daemon, prefix: "a", count: 300)
        let first = try Self.stream(daemon, lastEventID: nil, seconds: 2)
        #expect(first.count == 300)
        let last = try #require(first.last?.id)
        #expect(daemon.stop() == 0)
        try daemon.start()
        defer { daemon.stop() }
        let seq = try Self.seed(daemon, prefix: "b", count: 200, times: 2)
        _ = try daemon.contact("b-000000", after: seq)
        let rest = try Self.stream(daemon, lastEventID: last, seconds: 2)
        #expect(rest.count == 400)
        let all = try daemon.admin().request("GET", "/v1/changes?after=0&limit=10000").decode(ChangeListDocument.self)
        #expect(all.changes.count == 700)
        #expect((first + rest).map(\.id) == all.changes.map { "\($0.seq).\($0.index)" })
        let decoded = try (first + rest).map { try JSONDecoder().decode(ChangeDocument.self, from: Data($0.data.utf8)) }
        #expect(decoded == all.changes)
        // A bad Last-Event-ID is a 400 naming it, not a stream.
        let bad = try daemon.admin().request(
            "GET", "/v1/changes", headers: ["Accept": "text/event-stream", "Last-Event-ID": "soon"])
        #expect(bad.status == 400)
        #expect(try bad.error.field == "Last-Event-ID")
    }

    @Test("L2 a rebuild's switch is announced on the stream (event: rebuild), and the JSON feed names it")
    func rebuildOnTheStream() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let seq = try Self.seed(daemon, prefix: "r", count: 50)
        _ = try daemon.contact("r-000000", after: seq)
        let socket = daemon.adminSocket
        let received = Mutex("")
        let done = DispatchSemaphore(value: 0)
        Thread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = [
                "-sN", "--max-time", "6", "--unix-socket", socket, "-H", "Accept: text/event-stream",
                "http://localhost/v1/changes",
            ]
            let pipe = Pipe()
            process.standardOutput = pipe
            try? process.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            received.withLock { $0 = text }
            done.signal()
        }.start()
        Thread.sleep(forTimeInterval: 1)
        #expect(try daemon.adminRequest("POST", "/v1/rebuild", json: "{}").status == 202)
        try AuditEndToEndTests.waitUntil(timeout: 60) {
            try daemon.admin().request("GET", "/v1/rebuild").decode(RebuildStatus.self).rebuild?.phase == .done
        }
        done.wait()
        let text = received.withLock { $0 }
        let rebuildSeq = seq + 1
        #expect(text.contains("event: rebuild\ndata: {\"rebuild\":\(rebuildSeq)}"), "\(text.suffix(300))")
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.count >= 50)
        let page = try daemon.admin().request("GET", "/v1/changes?after=0&limit=1").decode(ChangeListDocument.self)
        #expect(page.rebuild == rebuildSeq)
    }

    @Test("L1 L2 tally contacts (table, CSV, JSON lines) and tally changes")
    func commands() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let seq = try Self.seed(daemon, prefix: "k", count: 3, times: 3)
        _ = try daemon.contact("k-000000", after: seq)
        let table = try daemon.run(["contacts", "--tag", "mql", "--sort", "id"])
        #expect(table.status == 0)
        #expect(table.output.contains("k-000002") && table.output.contains("3 contacts"), "\(table.output)")
        let csv = try daemon.run(["contacts", "--csv", "--sort", "id", "--limit", "2"])
        #expect(csv.output == "contact,points,tags,segments\nk-000000,30,mql,\nk-000001,30,mql,\n", "\(csv.output)")
        let lines = try daemon.run(["contacts", "--json", "--min-points", "30"]).output.split(separator: "\n")
        #expect(lines.count == 3)
        let changes = try daemon.run(["changes", "--json"])
        #expect(changes.output.split(separator: "\n").count == 9)
        let after = try daemon.run(["changes", "--after", "\(seq - 1)"])
        #expect(after.output.split(separator: "\n").count == 1, "\(after.output)")
    }
}

/// A flag one thread sets and another reads.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
