import ArgumentParser
import Foundation
import TallyClient
import TallyEngine

/// Options every subcommand takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file.")
    var config: String = "config/tally.yaml"

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    /// The configuration; the default path may be missing (defaults apply), an explicit one may not.
    func loadConfiguration() throws -> Configuration {
        let explicit = CommandLine.arguments.contains { $0 == "--config" || $0.hasPrefix("--config=") }
        return try Configuration.load(path: config, required: explicit)
    }

    /// A client of the running daemon's admin socket.
    func adminClient() throws -> UnixHTTPClient {
        UnixHTTPClient(socketPath: try loadConfiguration().adminSocket)
    }
}

/// The daemon answered with an error: its status and message.
struct DaemonError: Error, CustomStringConvertible {
    var status: Int
    var message: String

    init(_ reply: HTTPReply) {
        status = reply.status
        let object = (try? JSONSerialization.jsonObject(with: Data(reply.body))) as? [String: Any]
        let error = object?["error"] as? [String: Any]
        message = error?["message"] as? String ?? reply.text
    }

    var description: String { "the daemon answered \(status): \(message)" }
}

/// Percent-encodes a path segment.
func pathSegment(_ text: String) -> String {
    var allowed = CharacterSet.urlPathAllowed
    allowed.remove(charactersIn: "/?#")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
}

/// Writes to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
