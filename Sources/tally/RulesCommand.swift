import ArgumentParser
import Foundation
import TallyAPI
import TallyClient
import TallyCore
import TallyEngine

/// `tally rules …`: the published rules versions; check and publish rules files.
struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "List the published rules versions; check and publish rules files.",
        subcommands: [List.self, Check.self, Publish.self], defaultSubcommand: List.self)

    /// `tally rules [list]`: the published versions (A3).
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the published rules versions.")

        @OptionGroup var options: CommonOptions

        func run() throws {
            let reply = try options.adminClient().request("GET", "/v1/rules")
            guard reply.status == 200 else { throw DaemonError(reply) }
            if options.json {
                print(reply.text, terminator: "")
                return
            }
            var table = TextTable(["version", "seq", "published", "source", ""])
            for version in try reply.decode(RulesVersionList.self).versions {
                table.add([
                    "\(version.version)", "\(version.seq)", version.publishedAt, version.source,
                    version.inForce ? "in force" : "",
                ])
            }
            print(table.render(), terminator: "")
        }
    }

    /// `tally rules publish FILE`: validates and publishes a new version through the daemon (A3).
    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a rules file as a new version: it applies to events from now on (A3).")

        @OptionGroup var options: CommonOptions

        @Argument(help: "The rules file.")
        var file: String

        func run() throws {
            let reply = try Self.publish(file, client: options.adminClient())
            if options.json {
                print(reply.text, terminator: "")
                return
            }
            let version = try reply.decode(RulesVersionDocument.self)
            print("published \(file) as rules version \(version.version) (log sequence \(version.seq))")
        }

        /// Sends `file` to `PUT /v1/rules`; the daemon's answer when it published a version (201).
        static func publish(_ file: String, client: UnixHTTPClient) throws -> HTTPReply {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            let reply = try client.request(
                "PUT", "/v1/rules?source=" + pathSegment(file), body: Array(data), contentType: "application/yaml")
            guard reply.status == 201 else { throw DaemonError(reply) }
            return reply
        }
    }

    /// `tally rules check FILE`: validates a rules file offline and prints every error with its line, including
    /// email templates that are missing or do not parse (E2).
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a rules file without a daemon; print every error with its line.")

        @OptionGroup var options: CommonOptions

        @Argument(help: "The rules file.")
        var file: String

        @Option(help: "The email templates directory (default: \"templates\" in the configuration).")
        var templates: String?

        func run() throws {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read \(file): \(error.localizedDescription)")
            }
            let templates = EmailTemplates(
                directory: try self.templates ?? options.loadConfiguration().templatesDirectory)
            let rules: RuleSet
            do {
                rules = try RulesParser.parse(text, file: file, templateProblem: templates.problem)
            } catch {
                if options.json {
                    try printJSON(
                        RulesCheckReport(
                            valid: false, errors: error.issues.map { .init(line: $0.line, message: $0.message) }))
                } else {
                    printError(error.description)
                }
                throw ExitCode(1)
            }
            if options.json {
                try printJSON(
                    RulesCheckReport(
                        valid: true, groups: rules.groups.count, actions: rules.actions.count,
                        triggers: rules.triggers.count))
            } else {
                print(
                    "\(file): valid — \(rules.actions.count) actions, \(rules.triggers.count) triggers, "
                        + "\(rules.groups.count) groups")
            }
        }
    }
}
