import ArgumentParser
import Foundation
import TallyAPI
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

/// An answer of the daemon that is not the document the command expects (a daemon of another version).
struct UnexpectedAnswerError: Error, CustomStringConvertible {
    var expected: String
    var problem: String

    var description: String { "the daemon's answer is not a \(expected): \(problem)" }
}

extension HTTPReply {
    /// The body as the API document `type` (TallyAPI); a renamed or missing field is an error, never a zero.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw UnexpectedAnswerError(expected: "\(T.self)", problem: "\(error)")
        }
    }
}

/// The daemon answered with an error: its status and message.
struct DaemonError: Error, CustomStringConvertible {
    var status: Int
    var message: String

    init(_ reply: HTTPReply) {
        status = reply.status
        message = (try? JSONDecoder().decode(ErrorDocument.self, from: Data(reply.body)))?.error.message ?? reply.text
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

/// Percent-encodes a query parameter's value.
func queryValue(_ text: String) -> String {
    var allowed = CharacterSet.urlQueryAllowed
    allowed.remove(charactersIn: "&=+#?/")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
}

/// Posts a JSON `body` to `path` (an append: 202 with the receipt), then reads `contact`'s document once the
/// projections include the write (read your own write). Returns the contact's answer, a 200.
func postThenReadContact(
    _ client: UnixHTTPClient, _ path: String, body: some Encodable, contact: String
) throws -> HTTPReply {
    let reply = try client.request(
        "POST", path, body: Array(try JSONEncoder().encode(body)), contentType: "application/json")
    guard reply.status == 202 else { throw DaemonError(reply) }
    let seq = try reply.decode(EventReceipt.self).lastSeq ?? 0
    let contactReply = try client.request("GET", "/v1/contacts/" + pathSegment(contact) + "?after=\(seq)")
    guard contactReply.status == 200 else { throw DaemonError(contactReply) }
    return contactReply
}
