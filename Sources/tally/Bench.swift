import ArgumentParser
import Dispatch
import Foundation
import Synchronization
import TallyClient

/// `tally bench`: a load generator against a running daemon's ingest socket.
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

    @Option(help: "Distinct contacts.")
    var contacts = 10_000

    @Flag(help: "Send GET /health instead of events (the HTTP stack's ceiling, for comparison).")
    var health = false

    func run() throws {
        let configuration = try options.loadConfiguration()
        let requestsPerClient = max(1, events / batch / clients)
        let failures = Mutex(0)
        let group = DispatchGroup()
        let start = DispatchTime.now()
        let socket = configuration.ingestSocket
        let (batch, contacts, health) = (self.batch, self.contacts, self.health)
        for clientNumber in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                let client = UnixHTTPClient(socketPath: socket)
                var body: [UInt8] = []
                for request in 0..<requestsPerClient {
                    if health {
                        if (try? client.request("GET", "/health"))?.status != 200 { failures.withLock { $0 += 1 } }
                        continue
                    }
                    body.removeAll(keepingCapacity: true)
                    for n in 0..<batch {
                        let contact = (clientNumber &* 7919 &+ request &* batch &+ n) % contacts
                        body += Array(
                            #"{"type":"email.open","contact":"bench-\#(contact)","item":"newsletter-\#(n % 12)"}"#
                                .utf8)
                        body.append(10)
                    }
                    let reply = try? client.request(
                        "POST", "/v1/events", body: body, contentType: "application/x-ndjson")
                    if reply?.status != 202 { failures.withLock { $0 += 1 } }
                }
            }.start()
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let total = requestsPerClient * clients * batch
        let failed = failures.withLock { $0 }
        let rate = Double(total) / seconds
        let requests = Double(requestsPerClient * clients) / seconds
        if options.json {
            print(
                #"{"events":\#(total),"seconds":\#(seconds),"events_per_second":\#(Int(rate)),"#
                    + #""requests_per_second":\#(Int(requests)),"failed_requests":\#(failed)}"#)
        } else {
            print(
                "\(total) events in \(requestsPerClient * clients) requests of \(batch) from \(clients) clients: "
                    + String(
                        format: "%.2f s, %.0f events/s, %.0f requests/s, %d failed", seconds, rate, requests, failed))
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
