import ArgumentParser
import Foundation
import TallyClient

/// `tally score CONTACT`: a contact's scores.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a contact's main and group scores.")

    @OptionGroup var options: CommonOptions

    @Argument(help: "The contact id.")
    var contact: String

    @Option(help: "Wait until the projections include this log sequence number.")
    var after: UInt64?

    func run() throws {
        let client = try options.adminClient()
        var path = "/v1/contacts/" + pathSegment(contact)
        if let after { path += "?after=\(after)" }
        let reply = try client.request("GET", path)
        guard reply.status == 200 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let object = (try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]) ?? [:]
        print("\(contact): \(object["points"] as? Int64 ?? 0) points")
        let groups = (object["groups"] as? [String: Any]) ?? [:]
        for (name, points) in groups.sorted(by: { $0.key < $1.key }) { print("  \(name): \(points)") }
    }
}
