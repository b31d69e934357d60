import Foundation
import TallyAPI
import TallyClient
import Testing

let browserToolsMissing = executable(["nginx"]) == nil || executable(["chromium", "chromium-browser"]) == nil

@Suite("A real browser through nginx and the tracking pixel")
struct BrowserTests {
    @Test(
        "U3 headless Chromium loads the demo page three times through nginx and the visitor's score rises",
        .disabled(
            if: browserToolsMissing, "nginx or chromium is not installed (scripts/install-deps --test installs them)")
    )
    func chromiumScoresThroughThePixel() throws {
        let daemon = try Daemon(
            rules: """
                actions:
                  - { id: demo-visits, type: url.hit, delta: 10, url: "http://127.0.0.1:*/", page_hits: 3 }
                  - { id: any-visit, type: url.hit, delta: 1, repeatable: true, url: "http://127.0.0.1:*" }
                """)
        try daemon.start()
        defer { daemon.stop() }

        let nginx = try Nginx(daemon: daemon)
        var scores: [Int64] = []
        for visit in 1...3 {
            let dom = try Self.load(
                "http://127.0.0.1:\(nginx.port)/?contact=browser-visitor", profile: "chromium-\(visit)", daemon: daemon)
            #expect(dom.contains("Tally tracking demo"), "chromium did not render the page")
            let head = try daemon.health().logHead
            #expect(
                head == UInt64(visit) + 1, "the rules publication and the pixel hits in the log after visit \(visit)")
            scores.append(try daemon.contact("browser-visitor", after: head).document?.points ?? -1)
        }
        // one point per visit, ten more on the third (page_hits 3)
        #expect(scores == [1, 2, 13])
    }

    @Test(
        "I7 I2 I3 three anonymous page loads in headless Chromium, then a sign-up identifies the tally_anon cookie: the contact has the points of all three",
        .disabled(
            if: browserToolsMissing, "nginx or chromium is not installed (scripts/install-deps --test installs them)")
    )
    func anonymousVisitorSignsUp() throws {
        let daemon = try Daemon(
            rules: """
                actions:
                  - { id: pricing, type: url.hit, delta: 5, repeatable: true, url: "http://127.0.0.1:*/" }
                """)
        try daemon.start()
        defer { daemon.stop() }
        let nginx = try Nginx(daemon: daemon)
        // One browser profile throughout: the tally_anon cookie the first pixel sets comes back on every load.
        for visit in 1...3 {
            let dom = try Self.load("http://127.0.0.1:\(nginx.port)/", profile: "visitor", daemon: daemon)
            #expect(dom.contains("anonymous visitor"), "visit \(visit): \(dom)")
        }
        let anonymous = try daemon.admin().request("GET", "/v1/contacts?sort=id").decode(ContactListDocument.self)
        #expect(anonymous.contacts.count == 1, "one anonymous visitor, whatever its id")
        let cookieID = try #require(anonymous.contacts.first?.contact)
        #expect(anonymous.contacts.first?.points == 15)

        let dom = try Self.load(
            "http://127.0.0.1:\(nginx.port)/?identify=ada@example.com", profile: "visitor", daemon: daemon)
        #expect(dom.contains("identified 200"), "\(dom)")
        let ada = try #require(try daemon.contact("ada@example.com", after: try daemon.health().logHead).document)
        #expect(ada.points == 20)  // three anonymous loads and the sign-up's own
        #expect(ada.aliases == [cookieID])
        #expect(try daemon.contact(cookieID).document?.contact == "ada@example.com")
        #expect(try daemon.verify().passed)
    }

    /// Loads `url` in headless Chromium with the profile directory `profile` (cookies persist across loads of one
    /// profile) and returns the DOM once the page's script has run.
    static func load(_ url: String, profile: String, daemon: Daemon) throws -> String {
        let chromium = Process()
        chromium.executableURL = URL(fileURLWithPath: executable(["chromium", "chromium-browser"]) ?? "chromium")
        chromium.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--user-data-dir=\(daemon.directory)/\(profile)", "--virtual-time-budget=5000", "--dump-dom", url,
        ]
        // Output to a file, not a pipe: chromium's helper processes may hold a pipe open after it exits.
        let domPath = "\(daemon.directory)/dom-\(UUID().uuidString).html"
        FileManager.default.createFile(atPath: domPath, contents: nil)
        chromium.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: domPath))
        chromium.standardError = FileHandle.nullDevice
        try chromium.run()
        #expect(waitForExit(chromium, timeout: 60) != nil, "chromium did not finish within 60 s")
        return (try? String(contentsOfFile: domPath, encoding: .utf8)) ?? ""
    }
}
