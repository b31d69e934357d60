import ArgumentParser
import Foundation
import TallyAPI
import TallyClient

/// `tally merge FROM INTO`: makes FROM an alias of INTO (I2).
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge a contact into another (I2): FROM becomes an alias of INTO, whose state is both histories'.",
        discussion: """
            Through the admin socket, which merges any two contacts. A merge of a contact into itself, or one that \
            would make a cycle, is refused and appends nothing.
            """)

    @OptionGroup var options: CommonOptions

    @Argument(help: "The contact that becomes an alias.")
    var from: String

    @Argument(help: "The contact it merges into.")
    var into: String

    @Option(help: "An idempotency key: the same merge sent again is a duplicate.")
    var id: String?

    func run() throws {
        let client = try options.adminClient()
        let body = try JSONEncoder().encode(MergeRequest(from: from, into: into, id: id))
        let reply = try client.request("POST", "/v1/merge", body: Array(body), contentType: "application/json")
        guard reply.status == 202 else { throw DaemonError(reply) }
        let seq = try reply.decode(EventReceipt.self).lastSeq ?? 0
        let contact = try client.request("GET", "/v1/contacts/\(Self.escaped(into))?after=\(seq)")
        guard contact.status == 200 else { throw DaemonError(contact) }
        if options.json {
            print(contact.text, terminator: "")
            return
        }
        let document = try contact.decode(ContactDocument.self)
        print("merged \(from) into \(document.contact): \(document.points) points")
        print("aliases: \((document.aliases ?? []).joined(separator: ", "))")
    }

    static func escaped(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? id
    }
}

/// `tally erase CONTACT`: erases a contact with its aliases (I8).
struct Erase: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase a contact with its aliases (I8): its events leave the log, its records the projections.",
        discussion: """
            A contact.erased event holding only a keyed hash of the id is appended; the free pages of the data \
            files are overwritten, and the command returns once no file under data_dir holds the id or the \
            contact's email address. Backups made before keep the contact: see Docs/security.md.
            """)

    @OptionGroup var options: CommonOptions

    @Argument(help: "The contact to erase (or one of its aliases).")
    var contact: String

    func run() throws {
        let client = try options.adminClient()
        let reply = try client.request("DELETE", "/v1/contacts/\(Merge.escaped(contact))")
        guard reply.status == 200 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let report = try reply.decode(ErasureReport.self)
        print(
            "erased \(contact) with \(report.aliases) alias(es): \(report.removedEvents) events left the log; "
                + "contact.erased at \(report.seq), hash \(report.hash)")
    }
}
