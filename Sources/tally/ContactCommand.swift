import ArgumentParser
import Foundation
import TallyAPI

/// `tally contact set`: a contact's addresses and fields (F1).
struct Contact: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change a contact's email, owner email and fields (contact.update).", subcommands: [ContactSet.self])
}

/// `tally contact set CONTACT [--field NAME=VALUE ...] [--text-field NAME=VALUE ...] [--remove NAME ...]
/// [--email X] [--owner-email Y]`.
struct ContactSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set or remove a contact's fields and addresses (F1); fit scores follow (F2).",
        discussion: """
            A --field value written as a JSON number (500, -2.5, 1e3) is a number; anything else is a string. \
            --text-field always sets a string ("--text-field zip=01234"). --remove removes a field.
            """)

    @OptionGroup var options: CommonOptions

    @Argument(help: "The contact id.")
    var contact: String

    @Option(name: .customLong("field"), help: "NAME=VALUE: a number when VALUE is a JSON number, else a string.")
    var fields: [String] = []

    @Option(name: .customLong("text-field"), help: "NAME=VALUE: always a string.")
    var textFields: [String] = []

    @Option(name: .customLong("remove"), help: "NAME: remove this field.")
    var removals: [String] = []

    @Option(help: "The contact's email address.")
    var email: String?

    @Option(help: "The email address of the contact's owner.")
    var ownerEmail: String?

    /// `NAME=VALUE` split at the first `=`.
    static func split(_ argument: String, option: String) throws -> (String, String) {
        guard let equals = argument.firstIndex(of: "=") else {
            throw ValidationError("--\(option) \(argument): expected NAME=VALUE")
        }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    /// Whether `text` is a number in JSON's grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    static func isJSONNumber(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        func digits() -> Int {
            let count = bytes.prefix { (0x30...0x39).contains($0) }.count
            bytes = bytes.dropFirst(count)
            return count
        }
        if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        if bytes.first == UInt8(ascii: "0") {
            bytes = bytes.dropFirst()
        } else if digits() == 0 {
            return false
        }
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            guard digits() > 0 else { return false }
        }
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }

    /// The fields the options name; a name given twice is refused.
    func request() throws -> ContactUpdateRequest {
        var changes: [String: ContactFieldValue?] = [:]
        func add(_ name: String, _ value: ContactFieldValue?) throws {
            guard !changes.keys.contains(name) else { throw ValidationError("field \"\(name)\" is given twice") }
            changes[name] = .some(value)
        }
        for argument in fields {
            let (name, text) = try Self.split(argument, option: "field")
            if Self.isJSONNumber(text), let number = Double(text), number.isFinite {
                try add(name, .number(number))
            } else {
                try add(name, .string(text))
            }
        }
        for argument in textFields {
            let (name, text) = try Self.split(argument, option: "text-field")
            try add(name, .string(text))
        }
        for name in removals { try add(name, nil) }
        guard !changes.isEmpty || email != nil || ownerEmail != nil else {
            throw ValidationError("give --field, --text-field, --remove, --email or --owner-email")
        }
        return ContactUpdateRequest(email: email, ownerEmail: ownerEmail, fields: changes.isEmpty ? nil : changes)
    }

    func run() throws {
        let contactReply = try postThenReadContact(
            try options.adminClient(), "/v1/contacts/" + pathSegment(contact), body: try request(), contact: contact)
        if options.json {
            print(contactReply.text, terminator: "")
            return
        }
        let document = try contactReply.decode(ContactDocument.self)
        print("\(contact): score \(document.points)")
        for name in document.fields.keys.sorted() {
            print("  \(name) = \(document.fields[name].map { "\($0)" } ?? "")")
        }
    }
}
