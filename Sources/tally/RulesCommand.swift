import ArgumentParser
import Foundation
import TallyCore

/// `tally rules …`: work with rules files.
struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "Check rules files.", subcommands: [Check.self])

    /// `tally rules check FILE`: validates a rules file offline and prints every error with its line.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a rules file without a daemon; print every error with its line.")

        @OptionGroup var options: CommonOptions

        @Argument(help: "The rules file.")
        var file: String

        func run() throws {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read \(file): \(error.localizedDescription)")
            }
            do {
                let rules = try RulesParser.parse(text, file: file)
                if options.json {
                    print(
                        #"{"valid":true,"groups":\#(rules.groups.count),"actions":\#(rules.actions.count),"#
                            + #""triggers":\#(rules.triggers.count)}"#)
                } else {
                    print(
                        "\(file): valid — \(rules.actions.count) actions, \(rules.triggers.count) triggers, "
                            + "\(rules.groups.count) groups")
                }
            } catch {
                if options.json {
                    let issues = error.issues.map { ["line": $0.line, "message": $0.message] as [String: Any] }
                    let data = try JSONSerialization.data(
                        withJSONObject: ["valid": false, "errors": issues], options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    printError(error.description)
                }
                throw ExitCode(1)
            }
        }
    }
}
