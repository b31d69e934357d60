import ArgumentParser
import Foundation
import TallyAPI
import TallyClient

/// `tally email preview NAME CONTACT`: the email templates (SPEC §12).
struct Email: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Preview the emails that triggers send.", subcommands: [Preview.self])

    /// `tally email preview NAME CONTACT [--trigger ID]` (E3): the message as it would be sent, through the daemon.
    struct Preview: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the message template NAME makes for CONTACT, as it would be sent (nothing is sent).")

        @OptionGroup var options: CommonOptions

        @Argument(help: "The template's name (NAME.txt and NAME.html in the templates directory).")
        var template: String

        @Argument(help: "The contact's id.")
        var contact: String

        @Option(help: "The trigger for {{trigger.id}} and {{trigger.name}} (default: the first that sends it).")
        var trigger: String?

        func run() throws {
            var path = "/v1/email/preview?template=\(queryValue(template))&contact=\(queryValue(contact))"
            if let trigger { path += "&trigger=\(queryValue(trigger))" }
            let reply = try options.adminClient().request("GET", path)
            guard reply.status == 200 else { throw DaemonError(reply) }
            if options.json {
                print(reply.text, terminator: "")
                return
            }
            let preview = try reply.decode(EmailPreviewDocument.self)
            print(preview.message.replacingOccurrences(of: "\r\n", with: "\n"), terminator: "")
        }
    }
}
