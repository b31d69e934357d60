import ArgumentParser
import Foundation
import TallyAPI
import TallyClient

/// `tally score CONTACT`: a contact's scores.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a contact's main and group scores.")

    @OptionGroup var options: CommonOptions

    @Argument(help: "The contact id.")
    var contact: String

    @Option(help: "Wait until the projections include this log sequence number.")
    var after: UInt64?

    @Option(help: "The score as it stood at this time (RFC 3339 or epoch milliseconds), from the audit trail (A6).")
    var at: String?

    func run() throws {
        let client = try options.adminClient()
        var query: [String] = []
        if let after { query.append("after=\(after)") }
        if let at { query.append("at=" + pathSegment(at)) }
        let path = "/v1/contacts/" + pathSegment(contact) + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        let reply = try client.request("GET", path)
        guard reply.status == 200 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let document = try reply.decode(ContactDocument.self)
        let when = document.at.map { " at \($0)" } ?? ""
        // An alias answers for the contact it resolves to (I2).
        let resolved = document.contact == contact ? "" : " (merged into \(document.contact))"
        print("\(contact)\(resolved): \(document.points) points\(when)")
        for (name, points) in document.groups.sorted(by: { $0.key < $1.key }) { print("  \(name): \(points)") }
        if let aliases = document.aliases { print("  aliases: \(aliases.joined(separator: ", "))") }
    }
}
