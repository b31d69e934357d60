import Foundation
import Synchronization
import TallyAPI
import TallyClient
import TallyCore
import TallyStore
import Testing

/// CSV imports (M2, M3) and `trigger_existing` over many contacts (T4), through the real daemon.
@Suite("Imports and trigger_existing, end to end")
struct ImportTests {
    static let rules = """
        groups: [product]
        actions:
          - { id: open, type: email.open, delta: 5, repeatable: true }
        triggers:
          - { id: mql, min_points: 50, events: [{ id: tag, type: tags.modify, add: [mql] }] }

        """

    /// The daemon's anonymous resident memory (heap and stacks, not the LMDB map's file pages), bytes.
    static func anonymousMemory(_ daemon: Daemon) -> Int {
        guard let pid = daemon.process?.processIdentifier,
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// Samples ``anonymousMemory(_:)`` every 20 ms while `work` runs; returns the peak.
    static func peakMemory(_ daemon: Daemon, during work: () throws -> Void) rethrows -> Int {
        let peak = Mutex(anonymousMemory(daemon))
        let done = Mutex(false)
        let pid = daemon.process?.processIdentifier ?? 0
        let sampler = Thread {
            while !done.withLock({ $0 }) {
                let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") } ?? ""
                let bytes = (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
                peak.withLock { $0 = max($0, bytes) }
                usleep(20_000)
            }
        }
        sampler.start()
        defer {
            done.withLock { $0 = true }
            while sampler.isExecuting { usleep(5_000) }
        }
        try work()
        return peak.withLock { $0 }
    }

    /// Writes `rows` generated lines `c-i,points[,group]` after a header.
    static func writeCSV(_ path: String, rows: Int, points: (Int) -> Int = { $0 % 100 }) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? file.close() }
        var chunk = "contact,points\n"
        for index in 0..<rows {
            chunk += "c-\(index),\(points(index))\n"
            if chunk.utf8.count > 1 << 20 {
                file.write(Data(chunk.utf8))
                chunk = ""
            }
        }
        file.write(Data(chunk.utf8))
    }

    @Test("M2 a 1,000,000-line import streams: the daemon's memory stays bounded, every row is set")
    func millionLines() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let file = daemon.directory + "/leads.csv"
        try Self.writeCSV(file, rows: 1_000_000)
        let baseline = Self.anonymousMemory(daemon)
        var result: (status: Int32, output: String, error: String) = (0, "", "")
        let peak = try Self.peakMemory(daemon) { result = try daemon.run(["import", file, "--json"]) }
        #expect(result.status == 0, "\(result.error)")
        let receipt = try decode(ImportReceipt.self, output: result.output)
        #expect(receipt.imported == 1_000_000)
        let last = try #require(receipt.lastSeq)
        try AuditEndToEndTests.waitUntil(timeout: 300) { try daemon.contact("c-999999", after: last).status == 200 }
        #expect(try daemon.contact("c-999999").document?.points == 99)
        #expect(try daemon.contact("c-123456").document?.points == 56)
        // The rows are never all in memory: 1,000,000 parsed rows would take well over 100 MiB. What remains is
        // LMDB's dirty pages of the one import transaction and the projector's batches.
        print("M2 import of 1,000,000 lines: anonymous memory \(baseline >> 20) MiB → peak \(peak >> 20) MiB")
        #expect(peak - baseline < 160 << 20, "peak \(peak >> 20) MiB over a baseline of \(baseline >> 20) MiB")
    }

    @Test("M2 M3 a bad line in the middle imports nothing and is named; quoted fields; an import fires a trigger")
    func validationQuotingAndTriggers() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let bad = daemon.directory + "/bad.csv"
        try Self.writeCSV(bad, rows: 1000) { $0 == 499 ? -1 : 7 }
        var text = try String(contentsOfFile: bad, encoding: .utf8)
        text = text.replacingOccurrences(of: "c-499,-1", with: "c-499,12a")
        try text.write(toFile: bad, atomically: true, encoding: .utf8)
        let head = try daemon.health().logHead
        let refused = try daemon.run(["import", bad])
        #expect(refused.status != 0)
        #expect(refused.error.contains("line 501, column points"), "\(refused.error)")
        #expect(try daemon.health().logHead == head, "a bad file imports nothing")
        #expect(try daemon.contact("c-0").status == 404)

        let good = daemon.directory + "/good.csv"
        try "email,points,contact,group\r\nq@x.com,60,\"a,b\",\r\n,3,\"multi\nline \"\"quoted\"\"\",product\r\n".write(
            toFile: good, atomically: true, encoding: .utf8)
        let imported = try daemon.run(["import", good, "--json"])
        #expect(imported.status == 0, "\(imported.error)")
        let last = try #require(try decode(ImportReceipt.self, output: imported.output).lastSeq)
        let (status, contact) = try daemon.contact("a,b", after: last)
        #expect(status == 200)
        #expect(contact?.points == 60)
        #expect(contact?.email == "q@x.com")
        #expect(contact?.tags == ["mql"], "M3: the import lifted a,b over the MQL threshold")
        let quoted = try daemon.contact("multi\nline \"quoted\"").document
        #expect(quoted?.groups["product"] == 3)
        let explain = try daemon.run(["explain", "a,b"])
        #expect(explain.output.contains("imported from good.csv: score set to 60, was 0"), "\(explain.output)")
    }

    @Test("T4 trigger_existing over 200,000 contacts: each fires exactly once, in bounded batches, memory flat")
    func triggerExisting() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        let file = daemon.directory + "/existing.csv"
        try Self.writeCSV(file, rows: 200_000) { _ in 20 }
        let imported = try daemon.run(["import", file, "--json"])
        #expect(imported.status == 0, "\(imported.error)")
        let last = try #require(try decode(ImportReceipt.self, output: imported.output).lastSeq)
        _ = try daemon.contact("c-99999", after: last)
        let baseline = Self.anonymousMemory(daemon)
        let v2 = daemon.directory + "/rules-v2.yaml"
        try
            (Self.rules
            + "  - { id: existing, min_points: 20, trigger_existing: true, events: [{ id: tag, type: tags.modify, add: [old] }] }\n")
            .write(toFile: v2, atomically: true, encoding: .utf8)
        let peak = try Self.peakMemory(daemon) {
            #expect(try daemon.run(["rules", "publish", v2]).status == 0)
            // The pass visits contacts in id order; c-99999 is the last.
            try AuditEndToEndTests.waitUntil(timeout: 300) {
                try daemon.contact("c-99999").document?.tags.contains("old") == true
            }
        }
        print("T4 over 200,000 contacts: anonymous memory \(baseline >> 20) MiB → peak \(peak >> 20) MiB")
        #expect(peak - baseline < 48 << 20, "peak \(peak >> 20) MiB over a baseline of \(baseline >> 20) MiB")
        daemon.stop()
        let store = try ProjectionStore(
            directory: try ProjectionDirectories(dataDirectory: daemon.dataDirectory).current(), mapSize: 1 << 20)
        var fired = 0
        var contacts = 0
        try store.read { txn in
            var after: String?
            while true {
                let batch = try txn.contacts(after: after, limit: 10_000)
                for (_, state) in batch {
                    contacts += 1
                    if state.fired.contains("existing/tag") && state.tags.contains("old") { fired += 1 }
                }
                guard let next = batch.last?.0 else { break }
                after = next
            }
            #expect(try txn.existingTriggersPass() == nil, "the pass finished")
        }
        #expect(contacts == 200_000)
        #expect(fired == 200_000)
        #expect(try daemon.run(["verify"]).status == 0, "a replay fires the same events (A5)")
    }
}
