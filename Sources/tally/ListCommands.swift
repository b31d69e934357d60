import ArgumentParser
import Foundation
import TallyAPI
import TallyClient

/// `tally contacts [filters]`: a contact list (L1), as a table, JSON lines or CSV.
struct Contacts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List contacts by score, tag, segment, campaign or fired trigger (L1).",
        discussion: """
            Every page of the list is fetched (100 contacts a request) unless --limit caps the total. With --json, \
            one JSON object per contact and line; with --csv, a spreadsheet: contact, points, each group, tags and \
            segments.
            """)

    @OptionGroup var options: CommonOptions

    @Option(help: "Only contacts with at least this score.") var minPoints: Int64?
    @Option(help: "Only contacts with at most this score.") var maxPoints: Int64?
    @Option(help: "Apply the score bounds and the sort to this group's score.") var group: String?
    @Option(help: "Only contacts with this tag.") var tag: String?
    @Option(help: "Only contacts in this segment.") var segment: String?
    @Option(help: "Only contacts in this campaign.") var campaign: String?
    @Option(help: "Only contacts for which this trigger fired.") var trigger: String?
    @Option(help: "-points (highest first), points or id.") var sort = "-points"
    @Option(help: "At most this many contacts in all.") var limit: Int?
    @Flag(help: "Write CSV: contact, points, one column per group, tags, segments.") var csv = false

    func run() throws {
        let client = try options.adminClient()
        var cursor: String?
        var items: [ContactListDocument.Item] = []
        repeat {
            var query = [("sort", sort), ("limit", String(min(limit.map { $0 - items.count } ?? 100, 100)))]
            let filters: [(String, String?)] = [
                ("min_points", minPoints.map(String.init)), ("max_points", maxPoints.map(String.init)),
                ("group", group), ("tag", tag), ("segment", segment), ("campaign", campaign), ("trigger", trigger),
                ("cursor", cursor),
            ]
            query += filters.compactMap { name, value in value.map { (name, $0) } }
            let path = "/v1/contacts?" + query.map { "\($0)=\(queryValue($1))" }.joined(separator: "&")
            let reply = try client.request("GET", path)
            guard reply.status == 200 else { throw DaemonError(reply) }
            let page = try reply.decode(ContactListDocument.self)
            items += page.contacts
            if options.json { for item in page.contacts { try printJSON(item) } }
            cursor = page.next
        } while cursor != nil && items.count < (limit ?? .max)
        if options.json { return }
        if csv {
            let groups = Set(items.flatMap(\.groups.keys)).sorted()
            print((["contact", "points"] + groups + ["tags", "segments"]).map(csvField).joined(separator: ","))
            for item in items {
                let row =
                    [item.contact, String(item.points)] + groups.map { item.groups[$0].map(String.init) ?? "" }
                    + [item.tags.joined(separator: " "), item.segments.joined(separator: " ")]
                print(row.map(csvField).joined(separator: ","))
            }
            return
        }
        var table = TextTable(["contact", "points", "groups", "tags", "segments"], rightAligned: [1])
        for item in items {
            let groups = item.groups.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            table.add([
                item.contact, String(item.points), groups, item.tags.joined(separator: " "),
                item.segments.joined(separator: " "),
            ])
        }
        print(table.render(), terminator: "")
        print("\(items.count) contact\(items.count == 1 ? "" : "s")")
    }
}

/// `tally changes [--after POS] [--follow]`: the score changes in log order (L2).
struct Changes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print score changes in log order (L2), and with --follow the new ones as they are folded.")

    @OptionGroup var options: CommonOptions

    @Option(help: "Start after this feed position (SEQ or SEQ.INDEX, as a change's position or `next`).")
    var after = "0"

    @Flag(help: "Keep printing changes as the daemon folds them, until interrupted.")
    var follow = false

    func run() throws {
        let client = try options.adminClient()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var position = after
        while true {
            let reply = try client.request("GET", "/v1/changes?limit=1000&after=\(queryValue(position))")
            guard reply.status == 200 else { throw DaemonError(reply) }
            let page = try reply.decode(ChangeListDocument.self)
            var lines = ""
            for change in page.changes {
                if options.json {
                    lines += String(decoding: try encoder.encode(change), as: UTF8.self) + "\n"
                } else {
                    let delta = change.delta >= 0 ? "+\(change.delta)" : "\(change.delta)"
                    lines +=
                        "\(change.seq).\(change.index)  \(change.at)  \(change.contact)  \(change.score) \(delta) "
                        + "→ \(change.points)  \(change.kind) \(change.action)\n"
                }
            }
            // Written unbuffered, so that a follower piped into another program sees each page at once.
            FileHandle.standardOutput.write(Data(lines.utf8))
            position = page.next
            if page.changes.count == 1000 { continue }
            guard follow else { break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        if !options.json { FileHandle.standardError.write(Data("next: \(position)\n".utf8)) }
    }
}

/// One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
