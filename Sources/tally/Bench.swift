import ArgumentParser
import Dispatch
import Foundation
import Synchronization
import TallyAPI
import TallyClient
import TallyCore

/// `tally bench`: a load generator against a running daemon. Posts the ``Workload`` from keep-alive clients on
/// the ingest socket, optionally paced to a rate, and optionally measures while it posts how far the projector
/// lags behind the log head and how long contact reads take on the admin socket. `scripts/bench` drives it.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post generated events to a running daemon and report the durable ingest rate.")

    @OptionGroup var options: CommonOptions

    @Option(help: "Events in total.")
    var events = 100_000

    @Option(help: "Events per request (1 = single-event posts).")
    var batch = 10_000

    @Option(help: "Concurrent keep-alive clients.")
    var clients = 1

    @Option(help: "Distinct contacts (Zipf-distributed).")
    var contacts = 10_000

    @Option(help: "Events per second across all clients; 0 posts as fast as the daemon acknowledges.")
    var rate = 0

    @Option(help: "Seed of the workload.")
    var seed: UInt64 = 1

    @Flag(help: "Send GET /health instead of events (the HTTP stack's ceiling, for comparison).")
    var health = false

    @Flag(help: "Sample /health every 10 ms and report how far the projector lags behind the log head.")
    var probeLag = false

    @Flag(help: "Read contacts and one explain (about 100 entries) on the admin socket and report latencies.")
    var probeReads = false

    func run() throws {
        let configuration = try options.loadConfiguration()
        let requestsPerClient = max(1, events / batch / clients)
        let bodies =
            health
            ? []
            : Self.bodies(
                clients: clients, requests: requestsPerClient, batch: batch, contacts: contacts, seed: seed)
        let failures = Mutex(0)
        let receipts = Mutex((accepted: 0, duplicates: 0))
        let running = Atomic(true)
        let group = DispatchGroup()
        let lag = probeLag ? LagProbe(socket: configuration.ingestSocket) : nil
        let reads = probeReads ? try ReadProbe(socket: configuration.adminSocket, contacts: contacts) : nil
        let probes = DispatchGroup()
        if let lag { Self.spawn(probes) { lag.run(while: running) } }
        if let reads { Self.spawn(probes) { reads.run(while: running) } }

        let start = DispatchTime.now().uptimeNanoseconds
        let (batch, clients, rate, health, seed) = (self.batch, self.clients, self.rate, self.health, self.seed)
        let socket = configuration.ingestSocket
        for clientNumber in 0..<clients {
            Self.spawn(group) {
                let client = UnixHTTPClient(socketPath: socket)
                var keys = IdempotencyKeys(seed: seed, client: clientNumber)
                var pool = health ? [] : bodies[clientNumber]
                for request in 0..<requestsPerClient {
                    if rate > 0 {  // request k of client c is due at (k * clients + c) * batch / rate seconds
                        let due =
                            start + UInt64((request * clients + clientNumber) * batch) * 1_000_000_000
                            / UInt64(rate)
                        let now = DispatchTime.now().uptimeNanoseconds
                        if due > now { usleep(UInt32((due - now) / 1000)) }
                    }
                    if health {
                        if (try? client.request("GET", "/health"))?.status != 200 { failures.withLock { $0 += 1 } }
                        continue
                    }
                    let slot = request % pool.count
                    keys.renumber(&pool[slot].bytes, at: pool[slot].idOffsets)
                    let reply = try? client.request(
                        "POST", "/v1/events", body: pool[slot].bytes, contentType: "application/x-ndjson")
                    if reply?.status == 202, let receipt = try? reply?.decode(EventReceipt.self) {
                        receipts.withLock {
                            $0.accepted += receipt.accepted
                            $0.duplicates += receipt.duplicates
                        }
                    } else {
                        failures.withLock { $0 += 1 }
                    }
                }
            }
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        lag?.drain(timeoutSeconds: 600)
        running.store(false, ordering: .relaxed)
        probes.wait()

        let total = requestsPerClient * clients * batch
        let failed = failures.withLock { $0 }
        var figures: [String: Double] = [
            "events": Double(total), "accepted": Double(receipts.withLock { $0.accepted }),
            "duplicates": Double(receipts.withLock { $0.duplicates }), "seconds": seconds,
            "events_per_second": Double(total) / seconds,
            "requests_per_second": Double(requestsPerClient * clients) / seconds, "failed_requests": Double(failed),
        ]
        lag?.report(into: &figures)
        reads?.report(into: &figures)
        if options.json {
            let fields = figures.sorted { $0.key < $1.key }.map { #""\#($0.key)":\#(Self.number($0.value))"# }
            print("{" + fields.joined(separator: ",") + "}")
        } else {
            for (name, value) in figures.sorted(by: { $0.key < $1.key }) {
                print("\(name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(Self.number(value))")
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// Pre-generated request bodies, per client: as many as there are requests, up to about 64 MiB of events per
    /// client; the requests reuse them in turn beyond that, with fresh ids.
    static func bodies(clients: Int, requests: Int, batch: Int, contacts: Int, seed: UInt64) -> [[Body]] {
        let distinct = min(requests, max(1, 600_000 / batch))
        return (0..<clients).map { client in
            var workload = Workload(contacts: contacts, seed: seed &+ UInt64(client) &* 0x9E37_79B9)
            return (0..<distinct).map { _ in
                var body = Body()
                for _ in 0..<batch { workload.line(into: &body.bytes, idOffsets: &body.idOffsets) }
                return body
            }
        }
    }

    /// One request body and where its ids' digits are.
    struct Body {
        var bytes: [UInt8] = []
        var idOffsets: [Int] = []
    }

    static func spawn(_ group: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
        group.enter()
        Thread {
            body()
            group.leave()
        }.start()
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.6f", value)
    }
}

/// Samples the daemon's log head and projected sequence number every 10 ms. The lag of a sample is how long
/// the projector took to reach the head seen at that moment: the time from the sample to the first later
/// sample whose projected number is at least that head.
final class LagProbe: Sendable {
    let socket: String
    private let samples = Mutex<[(at: Double, head: UInt64, projected: UInt64)]>([])

    init(socket: String) {
        self.socket = socket
    }

    func run(while running: borrowing Atomic<Bool>) {
        let client = UnixHTTPClient(socketPath: socket)
        while running.load(ordering: .relaxed) {
            sample(client)
            usleep(10_000)
        }
    }

    /// Keeps sampling, after the posting ends, until the projector reached the last head (or the timeout).
    func drain(timeoutSeconds: Double) {
        let client = UnixHTTPClient(socketPath: socket)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            guard let last = sample(client), last.projected < last.head else { return }
            usleep(10_000)
        }
    }

    @discardableResult
    private func sample(_ client: UnixHTTPClient) -> (head: UInt64, projected: UInt64)? {
        guard let reply = try? client.request("GET", "/health"), let health = try? reply.decode(HealthStatus.self)
        else { return nil }
        let (head, projected) = (health.logHead, health.projected)
        let at = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        samples.withLock { $0.append((at, head, projected)) }
        return (head, projected)
    }

    func report(into figures: inout [String: Double]) {
        let samples = self.samples.withLock { $0 }
        guard let end = samples.last?.at else { return }
        // Heads and projected numbers only grow, so the covering sample of each sample is found by one pass.
        var lags: [Double] = []
        var covering = 0
        for sample in samples {
            while covering < samples.count, samples[covering].projected < sample.head { covering += 1 }
            lags.append(covering < samples.count ? max(samples[covering].at - sample.at, 0) : end - sample.at)
        }
        lags.sort()
        figures["lag_samples"] = Double(lags.count)
        figures["lag_seconds_p99"] = lags[min(lags.count - 1, lags.count * 99 / 100)]
        figures["lag_seconds_max"] = lags[lags.count - 1]
        figures["lag_events_max"] = Double(samples.map { $0.head - min($0.head, $0.projected) }.max() ?? 0)
    }
}

/// Reads contacts (Zipf-drawn, like the posted events), the explanation of one contact with about 100 audit
/// entries, and the MQL list's first page (`GET /v1/contacts?tag=mql&limit=100`, L1) on the admin socket, in turn,
/// one request every millisecond, and records each latency.
final class ReadProbe: Sendable {
    let socket: String
    let contacts: Int
    /// The contact whose explanation is read: the one whose audit was nearest 100 entries at the start.
    let explained: String
    private let latencies = Mutex<(contact: [Double], explain: [Double], list: [Double], entries: Int, listed: Int)>(
        ([], [], [], 0, 0))

    init(socket: String, contacts: Int) throws {
        self.socket = socket
        self.contacts = contacts
        let client = UnixHTTPClient(socketPath: socket)
        var best = (id: "c-0", distance: Int.max)
        var rank = 1
        while rank <= contacts {
            let id = "c-\(rank - 1)"
            let entries = Self.entries(try client.request("GET", "/v1/contacts/\(id)/explain"))
            if abs(entries - 100) < best.distance { best = (id, abs(entries - 100)) }
            rank *= 2
        }
        explained = best.id
    }

    static func entries(_ reply: HTTPReply) -> Int {
        guard reply.status == 200, let explanation = try? reply.decode(ExplainDocument.self) else { return 0 }
        return explanation.entries.count
    }

    func run(while running: borrowing Atomic<Bool>) {
        let client = UnixHTTPClient(socketPath: socket)
        var workload = Workload(contacts: min(contacts, 1000), seed: 7)
        var n = 0
        while running.load(ordering: .relaxed) {
            n += 1
            let explain = n % 3 == 0
            let list = n % 3 == 1
            var path = "/v1/contacts/\(explained)/explain"
            if list { path = "/v1/contacts?tag=mql&sort=-points&limit=100" }
            if !explain, !list { path = "/v1/contacts/c-\(workload.contact())" }
            let start = DispatchTime.now().uptimeNanoseconds
            guard let reply = try? client.request("GET", path) else { continue }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let entries = explain ? Self.entries(reply) : 0
            let listed = list ? ((try? reply.decode(ContactListDocument.self))?.contacts.count ?? 0) : 0
            latencies.withLock {
                if explain {
                    $0.explain.append(seconds)
                    $0.entries = entries
                } else if list {
                    if reply.status == 200 { $0.list.append(seconds) }
                    $0.listed = listed
                } else if reply.status == 200 {
                    $0.contact.append(seconds)
                }
            }
            usleep(1000)
        }
    }

    func report(into figures: inout [String: Double]) {
        let (contact, explain, list, entries, listed) = latencies.withLock { $0 }
        for (name, values) in [("contact", contact), ("explain", explain), ("list", list)] where !values.isEmpty {
            let sorted = values.sorted()
            figures["\(name)_reads"] = Double(sorted.count)
            figures["\(name)_ms_p50"] = sorted[sorted.count / 2] * 1000
            figures["\(name)_ms_p99"] = sorted[min(sorted.count - 1, sorted.count * 99 / 100)] * 1000
            figures["\(name)_ms_max"] = sorted[sorted.count - 1] * 1000
        }
        figures["explain_entries"] = Double(entries)
        figures["list_contacts"] = Double(listed)
    }
}
