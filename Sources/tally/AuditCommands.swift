import ArgumentParser
import Foundation
import TallyAPI
import TallyClient
import TallyEngine

/// `tally explain CONTACT`: why a contact has its points (A2).
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain a contact's score: every change in order, and the sums by action (A2).")

    @OptionGroup var options: CommonOptions

    @Argument(help: "The contact id.")
    var contact: String

    @Option(help: "Only the changes up to this time (RFC 3339 or epoch milliseconds).")
    var at: String?

    @Option(help: "List the newest N changes (the sums always cover all of them; the daemon's default is 10,000).")
    var limit: Int?

    func run() throws {
        var query: [String] = []
        if let at { query.append("at=" + pathSegment(at)) }
        if let limit { query.append("limit=\(limit)") }
        var path = "/v1/contacts/" + pathSegment(contact) + "/explain"
        if !query.isEmpty { path += "?" + query.joined(separator: "&") }
        let reply = try options.adminClient().request("GET", path)
        guard reply.status == 200 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let explanation = try reply.decode(ExplainDocument.self)
        var table = TextTable(["when", "score", "change", "total", "by", "why"], rightAligned: [2, 3])
        for entry in explanation.entries {
            table.add([
                entry.at, entry.group ?? "main", (entry.delta >= 0 ? "+" : "") + "\(entry.delta)",
                "\(entry.scoreAfter)",
                "\(entry.action) (v\(entry.rulesVersion))",
                entry.reason + (entry.origin.map { " [from \($0)]" } ?? ""),
            ])
        }
        let when = explanation.at.map { " as of \($0)" } ?? ""
        let resolved = explanation.contact == contact ? contact : "\(contact) (merged into \(explanation.contact))"
        print("\(resolved) has \(explanation.points) points\(when).\n")
        let total = explanation.entriesTotal
        if total == 0 {
            print("No score changes recorded.")
        } else {
            if total > explanation.entries.count {
                print("The newest \(explanation.entries.count) of \(total) changes:")
            }
            print(table.render())
            var sums = TextTable(["action", "points"], rightAligned: [1])
            for sum in explanation.actions { sums.add([sum.action, "\(sum.points)"]) }
            sums.add(["total", "\(explanation.points)"])
            print("Main score by action:")
            print(sums.render(), terminator: "")
        }
        for (name, points) in explanation.groups.sorted(by: { $0.key < $1.key }) { print("Group \(name): \(points)") }
    }
}

/// `tally points CONTACT OP VALUE`: an operator's change of a score (M1).
struct Points: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change a contact's score by hand: plus, minus, times, divide (toward zero) or set (M1).")

    @OptionGroup var options: CommonOptions

    @Argument(help: "The contact id.")
    var contact: String

    @Argument(help: "plus, minus, times, divide or set.")
    var operation: String

    @Argument(help: "The value.")
    var value: Int64

    @Option(help: "Change this group's score instead of the main score.")
    var group: String?

    @Option(help: "Why, for the audit trail.")
    var reason: String?

    func run() throws {
        let contactReply = try postThenReadContact(
            try options.adminClient(), "/v1/contacts/" + pathSegment(contact) + "/points",
            body: PointsChangeRequest(op: operation, value: value, group: group, reason: reason), contact: contact)
        if options.json {
            print(contactReply.text, terminator: "")
            return
        }
        let document = try contactReply.decode(ContactDocument.self)
        let score = group.map { document.groups[$0] ?? 0 } ?? document.points
        print("\(contact): \(group.map { "\($0) score" } ?? "score") is now \(score)")
    }
}

/// `tally rebuild [--dry-run]`: rescore the whole log under one rules version (A4).
struct Rebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild the projections from the log under one rules version, without downtime (A4).")

    @OptionGroup var options: CommonOptions

    @Flag(help: "Only report what would change.")
    var dryRun = false

    @Option(help: "The rules version (default: the one in force, which is the newest unless a rebuild pinned another).")
    var version: Int64?

    @Option(help: "Publish this rules file first, then rebuild under it.")
    var rules: String?

    func run() throws {
        let client = try options.adminClient()
        if let rules {
            let reply = try Rules.Publish.publish(rules, client: client)
            if !options.json {
                print("published \(rules) as rules version \(try reply.decode(RulesVersionDocument.self).version)")
            }
        }
        var query = dryRun ? ["dry_run=true"] : []
        if let version { query.append("version=\(version)") }
        let path = "/v1/rebuild" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        let reply = try client.request("POST", path)
        guard reply.status == (dryRun ? 200 : 202) else { throw DaemonError(reply) }
        if dryRun {
            try printPreview(reply)
        } else {
            let started = try reply.decode(RebuildStarted.self)
            if let requestedAt = started.requestedAt {
                try followPartitions(client, requestedAt: requestedAt)
            } else {
                try follow(client, seq: started.seq)
            }
        }
    }

    /// A cluster node's rebuild: shows how many partitions have rebuilt until all have (or one failed). A partition
    /// moving between nodes meanwhile (503) is asked again.
    private func followPartitions(_ client: UnixHTTPClient, requestedAt: Int64) throws {
        let bar = ProgressBar("rebuild")
        while true {
            let reply = try client.request("GET", "/v1/rebuild")
            if reply.status == 200 {
                let partitions = try reply.decode(ClusterRebuildStatus.self).partitions
                let ours = partitions.compactMap(\.rebuild).filter { $0.requestedAt == requestedAt }
                if let failed = ours.first(where: { $0.phase == .failed }) {
                    bar.finish()
                    throw ValidationError("the rebuild failed: \(failed.error ?? "unknown error")")
                }
                let done = ours.filter { $0.phase == .done }
                bar.update(done: UInt64(done.count), total: UInt64(partitions.count))
                if done.count == partitions.count {
                    bar.finish()
                    if options.json {
                        print(reply.text, terminator: "")
                    } else {
                        let replayed = done.map(\.replayed).reduce(0, +)
                        print(
                            "rebuilt under rules version \(done[0].version) in \(partitions.count) partitions: "
                                + "\(replayed) events replayed")
                    }
                    return
                }
            } else if reply.status != 503 {
                throw DaemonError(reply)
            }
            usleep(100_000)
        }
    }

    private func printPreview(_ reply: HTTPReply) throws {
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let preview = try reply.decode(RebuildPreview.self)
        var table = TextTable(["contact", "now", "after rebuild", "change"], rightAligned: [1, 2, 3])
        for change in preview.changes {
            let (old, new) = (change.oldPoints, change.newPoints)
            table.add([change.contact, "\(old)", "\(new)", (new >= old ? "+" : "") + "\(new &- old)"])
        }
        print("Dry run under rules version \(preview.rulesVersion) at log sequence \(preview.checkpoint):")
        print(
            "\(preview.changed) of \(preview.contacts) contacts would change; "
                + "total points \(preview.oldTotal) → \(preview.newTotal).")
        if preview.changed > 0 { print("\n" + table.render(), terminator: "") }
        print("\n\(preview.newlyReached) contacts would newly reach trigger events.")
        for contact in preview.reached.prefix(50) {
            print("  \(contact.contact): \(contact.triggers.joined(separator: ", "))")
        }
    }

    /// Shows the rebuild's progress until it has switched (or failed).
    private func follow(_ client: UnixHTTPClient, seq: UInt64) throws {
        let bar = ProgressBar("rebuild")
        while true {
            let reply = try client.request("GET", "/v1/rebuild")
            guard reply.status == 200 else { throw DaemonError(reply) }
            if let progress = try reply.decode(RebuildStatus.self).rebuild {
                if progress.seq > seq {
                    bar.finish()
                    throw ValidationError("superseded by a newer rebuild (log sequence \(progress.seq))")
                }
                if progress.seq == seq {
                    bar.update(done: progress.replayed, total: progress.total)
                    switch progress.phase {
                    case .done:
                        bar.finish()
                        if options.json {
                            print(reply.text, terminator: "")
                        } else {
                            print(
                                "rebuilt under rules version \(progress.version): \(progress.replayed) events replayed")
                        }
                        return
                    case .failed:
                        bar.finish()
                        throw ValidationError("the rebuild failed: \(progress.error ?? "unknown error")")
                    case .replaying, .switching:
                        break
                    }
                }
            }
            usleep(100_000)
        }
    }
}

/// `tally verify`: replay the log and compare with the projections (A5).
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay the log into a scratch environment and compare every projection with the live one (A5).",
        discussion: "Asks the running daemon; when none runs, opens the data directory itself.")

    @OptionGroup var options: CommonOptions

    func run() throws {
        let configuration = try options.loadConfiguration()
        let report: VerifyReport
        let client = UnixHTTPClient(socketPath: configuration.adminSocket, timeoutSeconds: 3600)
        if let reply = try? client.request("POST", "/v1/verify") {
            guard reply.status == 200 else { throw DaemonError(reply) }
            report = try reply.decode(VerifyReport.self)
        } else {
            let data = try OfflineData(configuration: configuration)
            let bar = ProgressBar("verify")
            report = try Replays.verify(
                log: data.log, live: { data.projections }, dataDirectory: configuration.dataDirectory,
                mapSize: configuration.mapSize, sessionTimeout: configuration.sessionTimeout,
                progress: { bar.update(done: $0, total: $1) })
            bar.finish()
        }
        if options.json {
            try printJSON(report)
        } else if report.passed {
            print("verified: the projections equal a replay of the log through sequence \(report.checkpoint)")
        } else {
            print("MISMATCH at sequence \(report.checkpoint):")
            for difference in report.differences { print("  " + difference) }
        }
        if !report.passed { throw ExitCode(1) }
    }
}

/// `tally import FILE.csv`: load scores from another system (M2).
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import scores from a CSV file (contact,points[,group][,email]); it sets, it does not add (M2).",
        discussion: "The whole file is checked first: a bad line imports nothing and is named.")

    @OptionGroup var options: CommonOptions

    @Argument(help: "The CSV file, with a header line.")
    var file: String

    func run() throws {
        let client = UnixHTTPClient(socketPath: try options.loadConfiguration().adminSocket, timeoutSeconds: 3600)
        let name = URL(fileURLWithPath: file).lastPathComponent
        let bar = ProgressBar("upload")
        let reply = try client.request(
            "POST", "/v1/import/points?file=" + pathSegment(name), bodyFile: file, contentType: "text/csv",
            progress: { bar.update(done: UInt64($0), total: UInt64($1)) })
        bar.finish()
        guard reply.status == 202 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let receipt = try reply.decode(ImportReceipt.self)
        print(
            "imported \(receipt.imported) scores from \(name) (log sequence \(receipt.firstSeq ?? 0)–\(receipt.lastSeq ?? 0))"
        )
    }
}

/// `tally backup DIR`: a hot backup of the running daemon's data.
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the log and the projections into DIR while the daemon keeps serving (a hot backup).",
        discussion: "Restore by stopping the daemon and pointing data_dir at the copy (or moving it into place).")

    @OptionGroup var options: CommonOptions

    @Argument(help: "A new or empty directory.")
    var directory: String

    func run() throws {
        let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
        let client = UnixHTTPClient(socketPath: try options.loadConfiguration().adminSocket, timeoutSeconds: 3600)
        let reply = try client.request("POST", "/v1/backup?dir=" + pathSegment(absolute))
        guard reply.status == 201 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let report = try reply.decode(BackupReport.self)
        print(
            "backed up to \(absolute): log through sequence \(report.logHead), projections through "
                + "\(report.projected), \(report.bytes >> 20) MiB")
    }
}
