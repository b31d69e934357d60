import Foundation
import Synchronization
import TallyClient
import TallyCore
import TallyStore
import Testing

/// Deterministic pseudo-random numbers (SplitMix64), so that a failing crash schedule can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

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
        var generator = SplitMix64(state: UInt64(number * 1000 + cycle))
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

    @Test(
        "A5 S6 kill -9 while clients post: every acknowledged event is in the log once, no request is half-applied, and scores equal a fold of the log"
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
                """
        let daemon = try Daemon(rules: crashRules)
        let rules = try RulesParser.parse(crashRules)
        var generator = SplitMix64(state: 42)
        let outcomes = Outcomes()
        for cycle in 0..<cycles {
            try daemon.start()
            let done = DispatchGroup()
            let socket = daemon.ingestSocket
            for number in 0..<4 {
                done.enter()
                Thread {
                    Self.client(number, cycle: cycle, socket: socket, outcomes: outcomes)
                    done.leave()
                }.start()
            }
            usleep(UInt32.random(in: 200_000...900_000, using: &generator))
            daemon.crash()
            done.wait()
        }
        try daemon.start()
        defer { daemon.stop() }

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
        let stored = Dictionary(uniqueKeysWithValues: try store.allContacts())
        #expect(stored == fold.contacts)
        #expect(try store.allOpenHits() == fold.openHits)
        for (contact, entries) in replay.audit { #expect(try store.read { try $0.audit(contact: contact) } == entries) }
        // A5: the daemon's own verify agrees.
        #expect(try daemon.verify().passed)
        #expect(fold.contacts.values.contains { !$0.visits.isEmpty && $0.tags.contains("warm") })
    }
}
