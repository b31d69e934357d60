import Foundation
import Glibc
import TallyAPI
import TallyClient
import Testing

/// The CLI's HTTP client against the real daemon: typed failures, and the one retry it makes.
@Suite("Client, end to end")
struct ClientTests {
    @Test("a socket nobody listens on is a connect failure carrying ENOENT")
    func connectFailureCarriesErrno() {
        let client = UnixHTTPClient(socketPath: "/tmp/tally-no-such-\(UUID().uuidString.prefix(8)).sock")
        do {
            _ = try client.request("GET", "/health")
            Issue.record("a request to a missing socket succeeded")
        } catch {
            #expect(error.kind == .connect)
            #expect(error.code == ENOENT)
            #expect(!error.isConnectionLost)
            #expect(error.description.contains("No such file or directory"), "\(error)")
        }
    }

    @Test("a kept-alive connection the daemon closed while idle is replaced, and the request answered once")
    func lostConnectionIsRetriedOnce() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "limits: { idle_timeout: 1s }")
        try daemon.start()
        defer { daemon.stop() }
        let client = daemon.ingest()
        #expect(try client.request("GET", "/health").status == 200)
        usleep(2_000_000)  // the daemon closes the idle connection after 1 s
        let reply = try daemon.post(
            [JSON.event("email.open", contact: "kept", item: "n", id: "kept-1")], client: client)
        #expect(reply.status == 202)
        #expect(try reply.receipt.accepted == 1)
    }
}
