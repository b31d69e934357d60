import ArgumentParser
import Foundation
import TallyAPI
import TallyClient

/// `tally outbox [--failed]`: the side effects waiting, delivered or parked as failed.
struct Outbox: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the outbox: webhooks and emails fired by triggers, with their delivery state.")

    @OptionGroup var options: CommonOptions

    @Flag(help: "Only the entries parked as failed.")
    var failed = false

    @Option(help: "Put a failed entry (its key, contact/trigger/event) back in the queue.")
    var retry: String?

    func run() throws {
        let client = try options.adminClient()
        if let retry {
            let reply = try client.request("POST", "/v1/outbox/\(pathSegment(retry))/retry")
            guard reply.status == 200 else { throw DaemonError(reply) }
            print(options.json ? reply.text : "\(retry): queued for delivery", terminator: options.json ? "" : "\n")
            return
        }
        let reply = try client.request("GET", "/v1/outbox" + (failed ? "?state=failed" : ""))
        guard reply.status == 200 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let entries = try reply.decode(OutboxList.self).entries
        if entries.isEmpty {
            print(failed ? "no failed entries" : "the outbox is empty")
            return
        }
        var table = TextTable(["key", "kind", "state", "attempts", "last error"], rightAligned: [3])
        for entry in entries {
            table.add([entry.key, entry.kind, entry.state, "\(entry.attempts)", entry.lastError ?? ""])
        }
        print(table.render(), terminator: "")
    }
}
