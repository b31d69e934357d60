import Foundation
import TallyAPI
import TallyCore
import Testing

@testable import TallyEngine

/// Email templates (SPEC §12): rendering (E1) and the rules check of the templates named (E2).
@Suite struct EmailTemplateTests {
    /// A fresh templates directory holding `files` (name → text); removed after `body`.
    func withTemplates<T>(_ files: [String: String], _ body: (String) throws -> T) throws -> T {
        let directory = NSTemporaryDirectory() + "tally-templates-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (name, text) in files {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        return try body(directory)
    }

    static let context = EmailTemplateContext(
        contact: ContactDocument(
            contact: "c-42", points: 37, groups: ["product": 25], tags: ["mql", "vip"], email: "ann@example.org"),
        triggerID: "mql", triggerName: "Marketing qualified")

    @Test("E1: every variable renders in the subject, the text and the HTML")
    func everyVariable() throws {
        let text = """
            Subject: {{contact}} at {{points}}

            contact={{contact}} points={{points}} product={{groups.product}} email={{email}}
            tags={{#tags}}[{{.}}]{{/tags}} trigger={{trigger.id}}/{{trigger.name}} field=<{{fields.company}}>

            """
        let html =
            "<p>{{contact}} {{points}} {{groups.product}} {{email}} {{#tags}}<i>{{.}}</i>{{/tags}} {{trigger.id}}</p>"
        let rendered = try withTemplates(["t.txt": text, "t.html": html]) { directory in
            try EmailTemplates(directory: directory).template("t").render(Self.context)
        }
        #expect(rendered.subject == "c-42 at 37")
        #expect(
            rendered.text
                == "contact=c-42 points=37 product=25 email=ann@example.org\n"
                + "tags=[mql][vip] trigger=mql/Marketing qualified field=<>\n")
        #expect(rendered.html == "<p>c-42 37 25 ann@example.org <i>mql</i><i>vip</i> mql</p>")
    }

    @Test("E1: the HTML part escapes values, the text part and the subject do not")
    func htmlEscaping() throws {
        var context = Self.context
        context.contact.contact = #"<script>"x" & 'y'</script>"#
        let rendered = try withTemplates(["t.txt": "Subject: {{contact}}\n\n{{contact}}\n", "t.html": "{{contact}}"]) {
            try EmailTemplates(directory: $0).template("t").render(context)
        }
        #expect(rendered.html == "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;")
        #expect(rendered.text == #"<script>"x" & 'y'</script>"# + "\n")
        #expect(rendered.subject == #"<script>"x" & 'y'</script>"#)
    }

    @Test("E1: a missing variable (no email, an unknown group or field, a typo) renders empty; no HTML part")
    func missingVariable() throws {
        var context = Self.context
        context.contact.email = nil
        let rendered = try withTemplates(["t.txt": "Subject: x{{nope}}\n\n[{{email}}][{{groups.none}}][{{fields.x}}]"])
        {
            try EmailTemplates(directory: $0).template("t").render(context)
        }
        #expect(rendered == RenderedEmail(subject: "x", text: "[][][]", html: nil))
    }

    @Test("E1: a rendered subject is one line (no header injection)")
    func subjectIsOneLine() throws {
        var context = Self.context
        context.triggerName = "a\r\nBcc: evil@example.org"
        let rendered = try withTemplates(["t.txt": "Subject: {{trigger.name}}\n\nbody"]) {
            try EmailTemplates(directory: $0).template("t").render(context)
        }
        #expect(!rendered.subject.contains("\n") && !rendered.subject.contains("\r"))
    }

    @Test("E2: a missing template, a missing subject line and a Mustache syntax error name the file and line")
    func templateErrors() throws {
        try withTemplates([
            "nosubject.txt": "Hello\n\nbody", "noblank.txt": "Subject: s\nbody",
            "broken.txt": "Subject: s\n\nline 3\n{{#tags}}unclosed\n", "badhtml.txt": "Subject: s\n\nok",
            "badhtml.html": "<p>\n{{/nothing}}</p>",
        ]) { directory in
            let templates = EmailTemplates(directory: directory)
            func failure(_ name: String) -> EmailTemplateError? {
                do {
                    _ = try templates.template(name)
                    return nil
                } catch { return error }
            }
            #expect(failure("absent")?.reason == "no such template file")
            #expect(failure("absent")?.file == directory + "/absent.txt")
            #expect(failure("nosubject")?.line == 1)
            #expect(failure("noblank")?.line == 2)
            let broken = try #require(failure("broken"))
            #expect(broken.file.hasSuffix("/broken.txt") && broken.reason.contains("Mustache"))
            #expect((broken.line ?? 0) >= 4)
            let badHTML = try #require(failure("badhtml"))
            #expect(badHTML.file.hasSuffix("/badhtml.html") && badHTML.line == 2)
            #expect(failure("../etc/passwd")?.reason.contains("must match") == true)
            #expect(templates.problem("badhtml.txt") != nil)
        }
    }

    static let rules = """
        actions:
          - { id: a, type: asset.download, delta: 1 }
        triggers:
          - id: mql
            min_points: 10
            events:
              - { id: ok, type: email.send, email: good }
              - { id: gone, type: email.send, email: missing }
              - { id: bad, type: email.send_to_user, email: broken, to: [s@example.org] }

        """

    @Test("E2: the rules check names each missing or unparsable template with the rules file's line")
    func rulesCheck() throws {
        try withTemplates(["good.txt": "Subject: s\n\nok", "broken.txt": "Subject: {{#x}}\n\nok"]) { directory in
            let templates = EmailTemplates(directory: directory)
            let error = #expect(throws: YAMLValidationError.self) {
                try RulesParser.parse(Self.rules, file: "rules.yaml", templateProblem: templates.problem)
            }
            let validation = try #require(error)
            let issues = validation.issues
            #expect(issues.map(\.line) == [8, 9])
            #expect(issues[0].message.contains("\"missing\"") && issues[0].message.contains("no such template file"))
            #expect(issues[1].message.contains("\"broken\"") && issues[1].message.contains("Mustache"))
            #expect(validation.description.contains("rules.yaml:8:"))
            // The engine's validation (start and publication) runs the same check.
            var configuration = Configuration()
            configuration.templatesDirectory = directory
            #expect(throws: YAMLValidationError.self) {
                try TallyEngine.validate(rules: Self.rules, source: "rules.yaml", configuration: configuration)
            }
            let fixed = Self.rules.replacingOccurrences(of: "email: missing", with: "email: good")
                .replacingOccurrences(of: "email: broken", with: "email: good")
            #expect(throws: Never.self) {
                try TallyEngine.validate(rules: fixed, source: "rules.yaml", configuration: configuration)
            }
        }
    }

    @Test("E1: the shipped example templates exist for every email in config/rules.yaml and render")
    func shippedTemplates() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let text = try String(contentsOfFile: root + "/config/rules.yaml", encoding: .utf8)
        let templates = EmailTemplates(directory: root + "/config/templates")
        _ = try RulesParser.parse(text, file: "config/rules.yaml", templateProblem: templates.problem)
        let names = Set(RulesParser.emailTemplateReferences(text).map(\.template))
        #expect(names == ["mql-welcome", "mql-alert"])
        for name in names {
            let rendered = try templates.template(name).render(Self.context)
            #expect(rendered.text.contains("c-42") && rendered.text.contains("37"))
            #expect(rendered.html?.contains("c-42") == true)
        }
    }
}
