import Foundation
import TallyAPI
import TallyCore
import Testing

@testable import TallyEngine

/// E1 with F1: `{{fields.NAME}}` renders the contact's fields from its folded state.
@Suite struct EmailTemplateFieldTests {
    @Test("F1 E1 {{fields.NAME}} renders a string, a whole number as an integer, a fraction; a missing one empty")
    func fieldsRender() throws {
        let directory = NSTemporaryDirectory() + "tally-templates-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "Subject: {{fields.title}}\n\n{{fields.size}}|{{fields.ratio}}|<{{fields.none}}>\n".write(
            toFile: directory + "/t.txt", atomically: true, encoding: .utf8)
        try "<p>{{fields.title}}</p>".write(toFile: directory + "/t.html", atomically: true, encoding: .utf8)
        let state = ContactState(
            points: 5, fields: ["title": .string("R&D <lead>"), "size": .number(800), "ratio": .number(0.25)])
        let context = EmailTemplateContext(
            contact: ContactDocument(id: "c-1", state: state), triggerID: "mql", triggerName: "MQL")
        let rendered = try EmailTemplates(directory: directory).template("t").render(context)
        #expect(rendered.subject == "R&D <lead>")
        #expect(rendered.text == "800|0.25|<>\n")
        #expect(rendered.html == "<p>R&amp;D &lt;lead&gt;</p>")
    }
}
