import Foundation
import Synchronization
import TallyAPI
import TallyClient
import TallyCore
import TallyStore
import Testing

/// Audit, explain, rules versions, rebuild and verify (A1–A6) and manual changes (M1) through the real daemon.
@Suite("Audit, rules versions, rebuild and verify, end to end")
struct AuditEndToEndTests {
    static let rules = """
        groups: [product]
        actions:
          - { id: open, type: email.open, delta: 5, repeatable: true }
          - { id: form, type: form.submit, delta: 1, repeatable: true }

        """

    static func open(_ contact: String, id: String? = nil) -> String {
        JSON.event("email.open", contact: contact, item: "n", id: id)
    }

    static func lastSeq(_ reply: HTTPReply) throws -> UInt64 { try #require(try reply.receipt.lastSeq) }

    @Test("M1 A2 A6 manual changes: each operation, the real deltas in explain, clear errors that append nothing")
    func manualChanges() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let before = try daemon.post([Self.open("m")])
        _ = try daemon.contact("m", after: try Self.lastSeq(before))
        let path = "/v1/contacts/m/points"
        for (op, value) in [("plus", 11), ("minus", 5), ("times", 2), ("divide", 3), ("set", 21)] {
            let reply = try daemon.adminRequest("POST", path, json: #"{"op":"\#(op)","value":\#(value),"reason":"r"}"#)
            #expect(reply.status == 202, "\(op): \(reply.text)")
        }
        let group = try daemon.adminRequest("POST", path, json: #"{"op":"plus","value":4,"group":"product"}"#)
        #expect(group.status == 202)
        let head = try daemon.health().logHead
        for (body, field) in [
            (#"{"op":"divide","value":0}"#, "value"),
            (#"{"op":"plus","value":1,"group":"nope"}"#, "group"),
            (#"{"op":"plus","value":99999999999999999999}"#, "value"),
            (#"{"op":"plus","value":1.5}"#, "value"),
            (#"{"op":"double","value":1}"#, "op"),
            (#"{"value":1}"#, "op"),
        ] {
            let reply = try daemon.adminRequest("POST", path, json: body)
            #expect(reply.status == 400, "\(body)")
            #expect(try reply.error.field == field, "\(body): \(reply.text)")
        }
        #expect(try daemon.health().logHead == head, "a rejected change appends nothing")
        let object = try daemon.admin().request("GET", "/v1/contacts/m/explain?after=\(head)")
            .decode(ExplainDocument.self)
        // open +5, plus 11 → 16, minus 5 → 11, times 2 → 22, divide 3 → 7, set 21 → 21, product +4
        #expect(object.entries.map(\.delta) == [5, 11, -5, 11, -15, 14, 4])
        #expect(object.points == 21)
        #expect(object.byAction["(manual)"] == 16)
        #expect(object.groups["product"] == 4)
        #expect(object.entries.last?.reason.contains("product score was 0, now 4") == true)

        // A2 with a limit: the newest entries only, in log order; the sums still cover every entry.
        let limited = try daemon.admin().request("GET", "/v1/contacts/m/explain?limit=2").decode(ExplainDocument.self)
        #expect(limited.entries.map(\.delta) == [14, 4])
        #expect(limited.entriesTotal == 7)
        #expect(limited.points == 21)
        #expect(limited.byAction["(manual)"] == 16)
        for bad in ["-1", "x", "100001"] {
            let reply = try daemon.admin().request("GET", "/v1/contacts/m/explain?limit=\(bad)")
            #expect(reply.status == 400, "limit=\(bad)")
            #expect(try reply.error.field == "limit")
        }
        let newest = try daemon.run(["explain", "m", "--limit", "2"])
        #expect(newest.output.contains("The newest 2 of 7 changes"), "\(newest.output)")

        let text = try daemon.run(["explain", "m"])
        #expect(text.status == 0)
        #expect(text.output.contains("m has 21 points"))
        #expect(text.output.contains("manual minus 5: r"))
        let asOf = try daemon.run(["score", "m", "--at", "2000-01-01T00:00:00Z"])
        #expect(asOf.output.contains("m: 0 points at 2000-01-01"), "\(asOf.output)")
        let points = try daemon.run(["points", "m", "minus", "1", "--reason", "typo"])
        #expect(points.status == 0, "\(points.error)")
        #expect(points.output.contains("score is now 20"))
    }

    @Test("A3 a version published mid-log scores later events; a restart does not revert it; the audit names both")
    func publishMidLog() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        _ = try daemon.post([Self.open("v")])
        let file = daemon.directory + "/rules-v2.yaml"
        try Self.rules.replacingOccurrences(of: "delta: 5", with: "delta: 7").write(
            toFile: file, atomically: true, encoding: .utf8)
        let published = try daemon.run(["rules", "publish", file])
        #expect(published.status == 0, "\(published.error)")
        #expect(published.output.contains("rules version 2"))
        let bad = try daemon.run(["rules", "publish", daemon.configPath])
        #expect(bad.status != 0, "a configuration file is not a rules file")
        let second = try daemon.post([Self.open("v")])
        let explain = try daemon.admin().request("GET", "/v1/contacts/v/explain?after=\(try Self.lastSeq(second))")
            .decode(ExplainDocument.self)
        #expect(explain.entries.map(\.rulesVersion) == [1, 2])
        #expect(explain.points == 12)
        daemon.stop()
        try daemon.start()
        defer { daemon.stop() }
        let versions = try daemon.admin().request("GET", "/v1/rules").decode(RulesVersionList.self).versions
        #expect(versions.count == 2, "the unchanged rules file is not published again at start")
        #expect(versions.last?.inForce == true)
        let listed = try daemon.run(["rules"])
        #expect(listed.output.contains("in force"))
    }

    @Test(
        "A4 A5 T7 rebuild with a changed delta while a client posts: the dry run predicts it, nothing is lost, no webhook twice, verify passes and catches tampering"
    )
    func rebuildWhilePosting() throws {
        let scratch = "/tmp/tally-servers-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try WebhookServer(directory: scratch + "/webhook")
        let trigger = """
            triggers:
              - { id: hot, min_points: 10, events: [{ id: push, type: integration.push, integration: crm }] }
            """
        let daemon = try Daemon(
            rules: Self.rules + trigger,
            extraConfig: """
                integrations:
                  crm: { url: "http://127.0.0.1:\(webhook.port)/hook" }
                outbox: { attempts: 3, backoff: 100ms }
                """)
        try daemon.start()
        // r-i gets i % 4 opens: 0, 5, 10, 15 points; the ten at 10 or more are pushed to the CRM.
        var lines: [String] = []
        for index in 0..<20 { lines += (0..<(index % 4)).map { _ in Self.open("r-\(index)") } }
        let seeded = try daemon.post(lines)
        var before: [String: Int64] = [:]
        for index in 0..<20 {
            // r-0, r-4, … have no events: unknown contacts (404), which hold 0 points.
            before["r-\(index)"] =
                try daemon.contact("r-\(index)", after: try Self.lastSeq(seeded)).document?.points ?? 0
        }
        try Self.waitUntil { webhook.requests.count >= 10 }

        // A client keeps posting (form.submit scores the same under both versions) with ids.
        let acknowledged = Mutex<[String]>([])
        let stop = Mutex(false)
        let socket = daemon.ingestSocket
        let poster = Thread {
            let client = UnixHTTPClient(socketPath: socket)
            var sequence = 0
            while !stop.withLock({ $0 }) {
                let id = "p-\(sequence)"
                let line = JSON.event("form.submit", contact: "p-\(sequence % 7)", item: "f", id: id)
                if let reply = try? client.request(
                    "POST", "/v1/events", body: Array(line.utf8), contentType: "application/json"),
                    reply.status == 202
                {
                    acknowledged.withLock { $0.append(id) }
                }
                sequence += 1
            }
        }
        poster.start()

        let file = daemon.directory + "/rules-v2.yaml"
        try (Self.rules + trigger).replacingOccurrences(of: "delta: 5", with: "delta: 10").write(
            toFile: file, atomically: true, encoding: .utf8)
        #expect(try daemon.run(["rules", "publish", file]).status == 0)
        let dry = try daemon.adminRequest("POST", "/v1/rebuild?dry_run=true")
        #expect(dry.status == 200, "\(dry.text)")
        let preview = try dry.decode(RebuildPreview.self)
        var predicted: [String: Int64] = [:]
        for change in preview.changes { predicted[change.contact] = change.newPoints }
        let reached = preview.reached.map(\.contact)
        #expect(predicted.count == 15)
        #expect(Set(reached) == Set((0..<20).filter { $0 % 4 == 1 }.map { "r-\($0)" }))
        let dryText = try daemon.run(["rebuild", "--dry-run"])
        #expect(dryText.output.contains("15 of"), "\(dryText.output)")

        let rebuilt = try daemon.run(["rebuild"])
        #expect(rebuilt.status == 0, "\(rebuilt.error)")
        #expect(rebuilt.output.contains("rebuilt under rules version 2"), "\(rebuilt.output)")
        stop.withLock { $0 = true }
        while poster.isExecuting { usleep(10_000) }
        try Self.waitUntil {
            webhook.requests.filter { $0.header("Idempotency-Key")?.hasPrefix("r-") == true }.count >= 15
        }
        usleep(500_000)

        let head = try daemon.health().logHead
        var actual: [String: Int64] = [:]
        for index in 0..<20 {
            let points = try daemon.contact("r-\(index)", after: head).document?.points ?? 0
            if points != before["r-\(index)"] { actual["r-\(index)"] = points }
        }
        #expect(actual == predicted, "the dry run predicted exactly what the rebuild changed")
        var formPoints: Int64 = 0
        for contact in 0..<7 {
            formPoints += try #require(try daemon.contact("p-\(contact)", after: head).document).points
        }
        #expect(
            formPoints == Int64(acknowledged.withLock { $0.count }),
            "every acknowledged event is in the rebuilt projections")
        for index in 0..<20 where index % 4 != 0 {
            #expect(webhook.acknowledged("r-\(index)/hot/push") == 1, "r-\(index) pushed once")
        }
        let keys = webhook.requests.compactMap { $0.header("Idempotency-Key") }
        #expect(keys.filter { $0.hasPrefix("r-") }.count == 15)
        #expect(Set(keys).count == keys.count, "no webhook sent twice (the posting client's contacts cross 10 too)")
        #expect(try daemon.verify().passed)

        // The rebuilt projections equal a fresh fold of the log.
        let log = try EventLog(directory: daemon.dataDirectory + "/log", mapSize: 1 << 20)
        let replay = try LogReplay.replay(try log.read(from: 1, limit: 1_000_000))
        let store = try ProjectionStore(
            directory: try ProjectionDirectories(dataDirectory: daemon.dataDirectory).current(), mapSize: 1 << 20)
        #expect(
            Dictionary(uniqueKeysWithValues: try store.allContacts().map { (ByteString($0), $1) })
                == replay.projection.contacts)
        daemon.stop()

        // Offline verify: passes, then fails on a tampered row.
        #expect(try daemon.run(["verify"]).status == 0)
        try store.update { txn in
            var state = try #require(try txn.contact("r-1"))
            state.points += 1
            try txn.setContact("r-1", state)
        }
        let tampered = try daemon.run(["verify"])
        #expect(tampered.status == 1)
        #expect(tampered.output.contains("contacts: r-1 differs"), "\(tampered.output)")
    }

    @Test(
        "tally backup copies the log and the projections while the daemon serves; a daemon on the copy has the same scores"
    )
    func hotBackup() throws {
        let daemon = try Daemon(rules: Self.rules)
        try daemon.start()
        defer { daemon.stop() }
        let reply = try daemon.post((0..<50).map { Self.open("b-\($0 % 5)") })
        let seq = try Self.lastSeq(reply)
        _ = try daemon.contact("b-0", after: seq)
        let target = daemon.directory + "/backup"
        // A client keeps posting while the backup runs.
        let socket = daemon.ingestSocket
        let stop = Mutex(false)
        let poster = Thread {
            let client = UnixHTTPClient(socketPath: socket)
            var index = 0
            while !stop.withLock({ $0 }) {
                let line = JSON.event("email.open", contact: "during-\(index % 3)", item: "n")
                _ = try? client.request("POST", "/v1/events", body: Array(line.utf8), contentType: "application/json")
                index += 1
            }
        }
        poster.start()
        let backup = try daemon.run(["backup", target])
        stop.withLock { $0 = true }
        while poster.isExecuting { usleep(5_000) }
        #expect(backup.status == 0, "\(backup.error)")
        #expect(backup.output.contains("backed up to \(target)"))
        #expect(try daemon.run(["backup", target]).status != 0, "a non-empty directory is refused")
        daemon.stop()

        let restored = try Daemon(rules: Self.rules)
        var config = try String(contentsOfFile: restored.configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: restored.directory + "/data", with: target)
        try config.write(toFile: restored.configPath, atomically: true, encoding: .utf8)
        try restored.start()
        defer { restored.stop() }
        for contact in 0..<5 {
            #expect(try restored.contact("b-\(contact)", after: seq).document?.points == 50)
        }
        #expect(try restored.verify().passed)
    }

    static func waitUntil(timeout: TimeInterval = 30, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            guard Date() < deadline else { throw ClientError("condition not reached within \(timeout) s") }
            usleep(50_000)
        }
    }
}
