import Foundation
import Synchronization
import TallyAPI
import TallyClient
import TallyCore
import TallyStore
import Testing

@Suite("Crash safety, end to end")
struct CrashTests {
    /// What the clients saw: ids acknowledged with 202, and the id sets of requests that got no answer.
    final class Outcomes: Sendable {
        let acknowledged = Mutex<Set<String>>([])
        let unanswered = Mutex<[[String]]>([])
    }

    /// Posts until the daemon disappears: single events and NDJSON batches, every event with a unique id.
    static func client(_ number: Int, cycle: Int, socket: String, outcomes: Outcomes) {
        let client = UnixHTTPClient(socketPath: socket, timeoutSeconds: 10)
        var generator = SplitMix64(seed: UInt64(number * 1000 + cycle))
        var request = 0
        while true {
            request += 1
            let size = request % 2 == 0 ? 1 : Int.random(in: 2...50, using: &generator)
            let ids = (0..<size).map { "k\(cycle)-\(number)-\(request)-\($0)" }
            let lines = ids.map { id in
                let contact = "c-\(generator.next() % 40)"
                let kind = Int(generator.next() % 6)
                guard kind < 4 else {  // url.hit, in one of a few sessions, minutes apart: dwell and returns
                    let path = ["/pricing", "/pricing/plans", "/about"][Int(generator.next() % 3)]
                    var object: [String: Any] = [
                        "type": "url.hit", "contact": contact, "url": "https://x.com\(path)", "id": id,
                        "at": 1_767_225_600_000 + Int64(request) * 60_000,
                    ]
                    if generator.next() % 4 != 0 { object["session"] = "s\(generator.next() % 3)" }
                    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
                    return String(decoding: data, as: UTF8.self)
                }
                let type = ["email.open", "asset.download", "form.submit", "page.hit"][kind]
                return JSON.event(type, contact: contact, item: "guide", id: id)
            }
            let body = Array((lines.joined(separator: "\n") + "\n").utf8)
            do {
                let reply = try client.request("POST", "/v1/events", body: body, contentType: "application/x-ndjson")
                if reply.status == 202 {
                    outcomes.acknowledged.withLock { $0.formUnion(ids) }
                } else {
                    outcomes.unanswered.withLock { $0.append(ids) }
                }
            } catch {
                outcomes.unanswered.withLock { $0.append(ids) }
                return
            }
        }
    }

    /// What the administrative client saw: manual changes and imports sent and acknowledged, by their reason.
    final class AdminOutcomes: Sendable {
        let acknowledged = Mutex<Set<String>>([])
        let sent = Mutex<Set<String>>([])
    }

    /// The operator's side of the mix: manual changes, small imports, merges (I2, with the request's name as their
    /// id) and rebuilds, until the daemon disappears.
    static func admin(cycle: Int, socket: String, outcomes: AdminOutcomes) {
        let client = UnixHTTPClient(socketPath: socket, timeoutSeconds: 10)
        var request = 0
        while true {
            request += 1
            let name = "a\(cycle)-\(request)"
            let merges = request == 1 && cycle % 2 == 0  // the first request of every other cycle
            if request % 3 != 2 && !merges { outcomes.sent.withLock { _ = $0.insert(name) } }
            let reply: HTTPReply
            do {
                switch request % 3 {
                case _ where merges:
                    // Two contacts the ingest clients post for, with history on both sides, through Segment's alias
                    // (which does not wait for the fold to catch up, as POST /v1/merge does; a merge already made
                    // is left out).
                    let body =
                        #"{"type":"alias","previousId":"c-\#(cycle % 40)","userId":"c-\#((cycle + 13) % 40)","messageId":"\#(name)"}"#
                    reply = try client.request(
                        "POST", "/v1/alias", body: Array(body.utf8), contentType: "application/json")
                case 0:
                    let csv =
                        "contact,points\n" + (0..<20).map { "c-\($0 * 2),\(request % 50)" }.joined(separator: "\n")
                    reply = try client.request(
                        "POST", "/v1/import/points?file=\(name)", body: Array(csv.utf8), contentType: "text/csv")
                case 1:
                    let body = #"{"op":"plus","value":7,"reason":"\#(name)"}"#
                    reply = try client.request(
                        "POST", "/v1/contacts/c-\(request % 40)/points", body: Array(body.utf8),
                        contentType: "application/json")
                default:
                    reply = try client.request("POST", request % 9 == 2 ? "/v1/rebuild" : "/v1/rebuild?dry_run=true")
                }
            } catch {
                return
            }
            if reply.status == 202, request % 3 != 2, !merges {
                outcomes.acknowledged.withLock { _ = $0.insert(name) }
            }
            usleep(50_000)
        }
    }

    @Test(
        "A5 S6 T7 kill -9 (and crashes inside the writer's and the projector's transactions) while clients post, import, change points, rebuild and deliver: every acknowledged event is in the log once, nothing is half-applied, the projections equal a fold of the log, and nothing recorded as delivered is sent again"
    )
    func killDuringIngest() throws {
        let cycles = Int(ProcessInfo.processInfo.environment["TALLY_CRASH_CYCLES"] ?? "") ?? 3
        let crashRules =
            endToEndRules + """

                  - { id: dwell, type: url.hit, delta: 3, repeatable: true, url: "https://x.com/pricing*", time_spent: 2m }
                  - { id: back, type: url.hit, delta: 4, url: "https://x.com/pricing*", returns_within: 1h, page_hits: 2 }
                triggers:
                  - { id: warm, min_points: 20, events: [{ id: tag, type: tags.modify, add: [warm] }] }
                  - { id: zero, min_points: 0, events: [{ id: seen, type: segments.modify, add: [all] }] }
                  - { id: crm, min_points: 30, events: [{ id: push, type: integration.push, integration: crm }] }
                """
        let scratch = "/tmp/tally-servers-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try WebhookServer(directory: scratch + "/webhook")
        let daemon = try Daemon(
            rules: crashRules,
            extraConfig: """
                integrations:
                  crm: { url: "http://127.0.0.1:\(webhook.port)/hook" }
                outbox: { attempts: 100, backoff: 50ms }
                """)
        var generator = SplitMix64(seed: 42)
        let outcomes = Outcomes()
        let adminOutcomes = AdminOutcomes()
        var idsSoFar: [String: Int] = [:]
        var scannedThrough: UInt64 = 0
        for cycle in 0..<cycles {
            // Every third cycle the daemon may also kill itself inside a write transaction.
            let faulty = cycle % 3 == 2
            do {
                try daemon.start(environment: faulty ? ["TALLY_FAULT": "writer:0.02,projector:0.05"] : [:])
            } catch  where faulty {
                daemon.crash()  // it killed itself while starting (a fault fired in the first batches)
                continue
            }
            // After every crash: each event acknowledged so far is in the log, once (the new part of the log is
            // read each time).
            let cycleLog = try EventLog(directory: daemon.dataDirectory + "/log", mapSize: 1 << 20)
            try cycleLog.forEach(from: scannedThrough + 1) { logged in
                if let id = logged.event.id { idsSoFar[id, default: 0] += 1 }
                scannedThrough = logged.seq
                return true
            }
            let acknowledgedSoFar = outcomes.acknowledged.withLock { $0 }
            #expect(
                acknowledgedSoFar.allSatisfy { idsSoFar[$0] == 1 }, "after cycle \(cycle): an acknowledged event lost")
            #expect(idsSoFar.values.allSatisfy { $0 == 1 }, "after cycle \(cycle): an event applied twice")
            let done = DispatchGroup()
            let socket = daemon.ingestSocket
            for number in 0..<4 {
                done.enter()
                Thread {
                    Self.client(number, cycle: cycle, socket: socket, outcomes: outcomes)
                    done.leave()
                }.start()
            }
            let adminSocket = daemon.adminSocket
            done.enter()
            Thread {
                Self.admin(cycle: cycle, socket: adminSocket, outcomes: adminOutcomes)
                done.leave()
            }.start()
            usleep(UInt32.random(in: 200_000...900_000, using: &generator))
            daemon.crash()
            done.wait()
        }
        try daemon.start()
        defer { daemon.stop() }
        // Let a rebuild that a crash interrupted finish, and the outbox drain. The projector first catches up with
        // the log: a rebuild event it has not folded yet starts its rebuild only when folded.
        try AuditEndToEndTests.waitUntil(timeout: 120) {
            let health = try daemon.ingest().request("GET", "/health").decode(HealthStatus.self)
            guard health.projected >= health.logHead else { return false }
            let phase = try daemon.admin().request("GET", "/v1/rebuild").decode(RebuildStatus.self).rebuild?.phase
            let pending = try daemon.admin().request("GET", "/v1/outbox?state=pending").decode(OutboxList.self)
            return phase != .replaying && phase != .switching && pending.entries.isEmpty
        }

        // Every acknowledged id exactly once; no id twice; unanswered requests all-or-nothing.
        let log = try EventLog(directory: daemon.dataDirectory + "/log", mapSize: 1 << 20)
        var seen: [String: Int] = [:]
        var events: [LoggedEvent] = []
        try log.forEach(from: 1) { logged in
            if let id = logged.event.id { seen[id, default: 0] += 1 }
            events.append(logged)
            return true
        }
        let head = events.last?.seq ?? 0
        let replay = try LogReplay.replay(events)
        let fold = replay.projection
        // Manual changes and imports: acknowledged ones are in the log once, the others whole or not at all.
        var adminCounts: [String: Int] = [:]
        for logged in events where logged.event.type == .pointsChange || logged.event.type == .pointsSet {
            adminCounts[logged.event.reason ?? "", default: 0] += 1
        }
        // Merges (an alias already made, or one around a cycle, is acknowledged and left out): never twice.
        var mergeCounts: [String: Int] = [:]
        for logged in events where logged.event.type == .contactMerge {
            mergeCounts[logged.event.id ?? "", default: 0] += 1
        }
        #expect(mergeCounts.values.allSatisfy { $0 == 1 }, "a merge applied twice: \(mergeCounts)")
        let adminAcknowledged = adminOutcomes.acknowledged.withLock { $0 }
        for name in adminOutcomes.sent.withLock({ $0 }) {
            let count = adminCounts[name] ?? 0
            #expect(!adminAcknowledged.contains(name) || count > 0, "\(name) acknowledged but missing")
            #expect(count == 0 || count == 1 || count == 20, "\(name) half-applied: \(count) events")
        }
        let acknowledged = outcomes.acknowledged.withLock { $0 }
        #expect(acknowledged.count > 0)
        #expect(acknowledged.allSatisfy { seen[$0] == 1 })
        #expect(seen.values.allSatisfy { $0 == 1 })
        for ids in outcomes.unanswered.withLock({ $0 }) {
            let present = ids.filter { seen[$0] != nil }.count
            #expect(present == 0 || present == ids.count, "request half-applied: \(present) of \(ids.count)")
        }

        // The projections, once caught up, equal a fresh fold of the whole log.
        _ = try daemon.contact("c-0", after: head)
        let store = try ProjectionStore(
            directory: try ProjectionDirectories(dataDirectory: daemon.dataDirectory).current(), mapSize: 1 << 20)
        #expect(try store.checkpoint() == head)
        let stored = Dictionary(uniqueKeysWithValues: try store.allContacts().map { (ByteString($0), $1) })
        #expect(stored == fold.contacts)
        #expect(try store.allOpenHits() == fold.openHits)
        for (contact, entries) in replay.audit {
            #expect(try store.read { try $0.audit(contact: contact.string) } == entries)
        }
        // A5: the daemon's own verify agrees.
        let report = try daemon.verify()
        #expect(report.passed, "\(report.differences)")
        #expect(fold.contacts.values.contains { !$0.visits.isEmpty && $0.tags.contains("warm") })

        // T7: every fired push was delivered, and none was sent again after its delivery was recorded.
        let entries = try daemon.admin().request("GET", "/v1/outbox?limit=100000").decode(OutboxList.self).entries
        var deliveredAt: [String: Double] = [:]
        for entry in entries {
            let key = entry.key
            #expect(entry.state == "delivered", "\(key) not delivered")
            if let text = entry.deliveredAt, let millis = Timestamp.parse(text) {
                deliveredAt[key] = Double(millis) / 1000
            }
        }
        #expect(
            Set(deliveredAt.keys.map { ByteString($0) }) == replay.sideEffects,
            "the outbox holds exactly the side effects the log fires")
        // T7: the log itself records every delivery (what a refold or a restored backup relies on).
        #expect(Set(replay.deliveries.keys) == replay.sideEffects)
        #expect(replay.deliveries.values.allSatisfy { $0.state == .delivered }, "a delivery the log does not record")
        var resent = 0
        for request in webhook.requests {
            guard let key = request.header("Idempotency-Key") else { continue }
            let time = request.time
            #expect(deliveredAt[key] != nil, "\(key) was sent but is not in the outbox")
            if let recorded = deliveredAt[key], time > recorded + 0.001 { resent += 1 }
        }
        #expect(resent == 0, "\(resent) pushes were sent again after their delivery was recorded")
        print(
            "crash loop: \(cycles) cycles, \(acknowledged.count) acknowledged events, \(adminAcknowledged.count) admin requests acknowledged (\(mergeCounts.count) merges in the log), \(webhook.requests.count) webhook requests for \(deliveredAt.count) keys"
        )
    }
}
