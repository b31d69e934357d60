import ArgumentParser
import Foundation
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
        let object = (try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]) ?? [:]
        let entries = (object["entries"] as? [[String: Any]]) ?? []
        if entries.isEmpty {
            print(failed ? "no failed entries" : "the outbox is empty")
            return
        }
        let rows = entries.map { entry -> [String] in
            [
                entry["key"] as? String ?? "", entry["kind"] as? String ?? "", entry["state"] as? String ?? "",
                "\(entry["attempts"] as? Int ?? 0)", entry["last_error"] as? String ?? "",
            ]
        }
        printTable(header: ["KEY", "KIND", "STATE", "ATTEMPTS", "LAST ERROR"], rows: rows)
    }
}

/// Prints rows in columns padded to their widest cell.
func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}
