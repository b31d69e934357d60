import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TallyAPI
import TallyEngine
import TallyServer
import Testing

/// `GET /v1/email/preview` (SPEC E3) on the admin router, against the real engine and a templates directory.
@Suite("Router: email preview")
struct EmailRouteTests {
    static let rules = """
        actions:
          - { id: download, type: asset.download, delta: 10, repeatable: true }
        triggers:
          - id: hot
            name: Hot lead
            min_points: 1000
            events: [{ id: hello, type: email.send, email: welcome }]

        """

    @Test("E3: the preview renders the template for the contact, multipart with the HTML part; 404, 400")
    func preview() async throws {
        let templates = NSTemporaryDirectory() + "tally-templates-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: templates, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: templates) }
        try "Subject: Hi {{contact}}\n\n{{contact}} has {{points}} points ({{trigger.name}}).\n".write(
            toFile: templates + "/welcome.txt", atomically: true, encoding: .utf8)
        try "<p>{{contact}}: <b>{{points}}</b></p>\n".write(
            toFile: templates + "/welcome.html", atomically: true, encoding: .utf8)
        try await TestEngine.with(rules: Self.rules, configure: { $0.templatesDirectory = templates }) { test in
            try await test.admin { client in
                let receipt = try await client.append(#"{"type":"asset.download","contact":"c<1>","item":"guide"}"#)
                let seq = try #require(receipt.lastSeq)
                let response = try await client.get(
                    "/v1/email/preview?template=welcome&contact=c%3C1%3E&after=\(seq)")
                #expect(response.status == .ok)
                let preview = try decode(EmailPreviewDocument.self, response)
                #expect(preview.subject == "Hi c<1>")
                #expect(preview.text == "c<1> has 10 points (Hot lead).\n")
                #expect(preview.html == "<p>c&lt;1&gt;: <b>10</b></p>\n")
                #expect(preview.trigger == "hot")
                #expect(preview.message.contains("Content-Type: multipart/alternative; boundary="))
                #expect(preview.message.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"))
                #expect(preview.message.contains("X-Tally-Template: welcome"))
                try expectError(
                    try await client.get("/v1/email/preview?template=welcome&contact=nobody"), .notFound,
                    containing: "nobody")
                try expectError(
                    try await client.get("/v1/email/preview?template=absent&contact=c%3C1%3E"), .badRequest,
                    field: "template", containing: "absent")
                try expectError(
                    try await client.get("/v1/email/preview?contact=c-1"), .badRequest, field: "template",
                    containing: "template")
            }
        }
    }
}
