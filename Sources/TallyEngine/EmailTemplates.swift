import Foundation
import Mustache
public import TallyAPI
import TallyCore

/// Why an email template cannot be used (E1, E2): its name, the file and, for a syntax error, the line in it.
public struct EmailTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The template's name, as the rules file gives it.
    public var template: String
    /// The template file at fault (`…/NAME.txt` or `…/NAME.html`).
    public var file: String
    /// The line in `file`, for a syntax error; nil otherwise.
    public var line: Int?
    /// What is wrong.
    public var reason: String

    public init(template: String, file: String, line: Int? = nil, reason: String) {
        self.template = template
        self.file = file
        self.line = line
        self.reason = reason
    }

    /// `FILE[:LINE]: REASON`, without the template's name (the rules check puts it first).
    public var problem: String { file + (line.map { ":\($0)" } ?? "") + ": " + reason }

    public var description: String { "email template \"\(template)\": " + problem }
}

/// What the templates are rendered over (E1): the contact's document and the trigger that sends the email.
public struct EmailTemplateContext: Sendable, Equatable {
    /// The contact as `GET /v1/contacts/{id}` shows it.
    public var contact: ContactDocument
    /// The contact's fields (`{{fields.NAME}}`, F1), as text: numbers without a fraction print as integers. A
    /// field the contact lacks renders empty.
    public var fields: [String: String]
    /// The trigger's id and name (`{{trigger.id}}`, `{{trigger.name}}`).
    public var triggerID: String
    public var triggerName: String

    /// `fields` defaults to the contact document's fields.
    public init(contact: ContactDocument, fields: [String: String]? = nil, triggerID: String, triggerName: String) {
        self.contact = contact
        self.fields = fields ?? contact.fields.mapValues(\.description)
        self.triggerID = triggerID
        self.triggerName = triggerName
    }

    /// The Mustache view: `contact`, `points`, `groups`, `fields`, `email`, `tags`, `trigger`. A value the
    /// contact lacks (no email, a group without points) is absent and renders empty.
    var view: [String: Any] {
        var view: [String: Any] = [
            "contact": contact.contact, "points": contact.points, "groups": contact.groups, "fields": fields,
            "tags": contact.tags, "trigger": ["id": triggerID, "name": triggerName],
        ]
        if let email = contact.email { view["email"] = email }
        return view
    }
}

/// A rendered email: the subject, the text and the HTML alternative (when the template has one).
public struct RenderedEmail: Sendable, Equatable {
    public var subject: String
    public var text: String
    public var html: String?
}

/// One email template (E1): `NAME.txt` (a `Subject: …` line, a blank line, the text) and optionally `NAME.html`,
/// Mustache templates. The subject and the text are rendered as they are; the HTML part escapes every value.
public struct EmailTemplate: Sendable {
    public let name: String
    let subject: MustacheTemplate
    let text: MustacheTemplate
    let html: MustacheTemplate?

    /// Switches a template to plain text: no HTML escaping. On the first line without a line end, so that the
    /// line numbers of syntax errors stay those of the file.
    private static let textPragma = "{{% CONTENT_TYPE: TEXT }}"

    /// Reads and parses template `name` from `directory`.
    public init(name: String, directory: String) throws(EmailTemplateError) {
        let textPath = directory + "/" + name + ".txt"
        guard RulesParser.isValidID(name) else {
            throw EmailTemplateError(
                template: name, file: textPath, reason: "a template name must match [a-z0-9-_.]{1,64}")
        }
        guard FileManager.default.fileExists(atPath: textPath) else {
            throw EmailTemplateError(template: name, file: textPath, reason: "no such template file")
        }
        let source = try Self.read(textPath, template: name)
        // First line `Subject: …`, then a blank line, then the body.
        var lines = source.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        guard let first = lines.first, first.hasPrefix("Subject:") else {
            throw EmailTemplateError(
                template: name, file: textPath, line: 1, reason: "the first line must be \"Subject: …\"")
        }
        guard lines.count >= 2, lines[1].trimmingCharacters(in: .whitespaces).isEmpty else {
            throw EmailTemplateError(
                template: name, file: textPath, line: 2, reason: "the subject must be followed by a blank line")
        }
        while lines.count < 3 { lines.append("") }
        self.name = name
        subject = try Self.parse(
            Self.textPragma + first.dropFirst("Subject:".count).trimmingCharacters(in: .whitespaces), file: textPath,
            template: name, firstLine: 1)
        text = try Self.parse(Self.textPragma + lines[2], file: textPath, template: name, firstLine: 3)
        let htmlPath = directory + "/" + name + ".html"
        if FileManager.default.fileExists(atPath: htmlPath) {
            html = try Self.parse(Self.read(htmlPath, template: name), file: htmlPath, template: name, firstLine: 1)
        } else {
            html = nil
        }
    }

    private static func read(_ path: String, template: String) throws(EmailTemplateError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EmailTemplateError(template: template, file: path, reason: "cannot read the file")
        }
        guard let text = String(bytes: data, encoding: .utf8) else {
            throw EmailTemplateError(template: template, file: path, reason: "the file is not UTF-8")
        }
        return text
    }

    private static func parse(
        _ source: String, file: String, template: String, firstLine: Int
    )
        throws(EmailTemplateError) -> MustacheTemplate
    {
        do {
            return try MustacheTemplate(string: source)
        } catch let error as MustacheTemplate.ParserError {
            throw EmailTemplateError(
                template: template, file: file, line: error.context.lineNumber + firstLine - 1,
                reason: "Mustache syntax error (\(error.error)) in \"\(error.context.line)\"")
        } catch {
            throw EmailTemplateError(template: template, file: file, reason: "Mustache syntax error (\(error))")
        }
    }

    /// The email for `context`. The subject is one line: line ends in it become spaces (no header injection).
    public func render(_ context: EmailTemplateContext) -> RenderedEmail {
        let view = context.view
        let subject = self.subject.render(view).split(whereSeparator: \.isNewline).joined(separator: " ")
        return RenderedEmail(subject: subject, text: text.render(view), html: html?.render(view))
    }
}

/// The templates directory (config `templates`, E1).
public struct EmailTemplates: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// Template `name`, read and parsed now: an edited template applies to the next email without a restart.
    public func template(_ name: String) throws(EmailTemplateError) -> EmailTemplate {
        try EmailTemplate(name: name, directory: directory)
    }

    /// Why template `name` cannot be used (missing, unreadable, unparsable), or nil: the rules check's hook (E2).
    public func problem(_ name: String) -> String? {
        do {
            _ = try template(name)
            return nil
        } catch {
            return error.problem
        }
    }
}
