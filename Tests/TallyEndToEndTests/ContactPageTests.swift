import Foundation
import TallyAPI
import TallyClient
import Testing

/// The contact page of the admin UI, rendered by a real headless Chromium over the loopback listener.
@Suite("The contact page in a real browser")
struct ContactPageTests {
    static func chromium(_ arguments: [String], output: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable(["chromium", "chromium-browser"]) ?? "chromium")
        process.arguments =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--window-size=1280,1100",
            ] + arguments
        FileManager.default.createFile(atPath: output, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = FileHandle.nullDevice
        try process.run()
        #expect(waitForExit(process, timeout: 60) != nil, "chromium did not finish within 60 s")
    }

    @Test(
        "the contact page renders in headless Chromium with one chart marker per audit entry and loads nothing external",
        .disabled(if: browserToolsMissing, "chromium is not installed (scripts/install-deps --test installs it)")
    )
    func contactPage() throws {
        let port = freeLoopbackPort()
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "admin_http: 127.0.0.1:\(port)")
        try daemon.start()
        defer { daemon.stop() }
        var lines: [String] = []
        for hour in 0..<6 {
            let at = 1_767_225_600_000 + Int64(hour) * 3_600_000
            lines.append(#"{"type":"email.open","contact":"ui-1","item":"n\#(hour)","at":\#(at)}"#)
        }
        lines.append(#"{"type":"form.submit","contact":"ui-1","item":"demo","at":1767250000000}"#)
        lines.append(#"{"type":"url.hit","contact":"ui-1","url":"https://x.com/pricing","at":1767260000000}"#)
        lines.append(#"{"type":"page.hit","contact":"ui-1","item":"lp","at":1767270000000}"#)
        _ = try daemon.post(lines)
        let manual = try daemon.adminRequest(
            "POST", "/v1/contacts/ui-1/points", json: #"{"op":"plus","value":10,"reason":"met at <the fair>"}"#)
        let seq = try #require(try manual.receipt.lastSeq)
        let entries = try daemon.admin().request("GET", "/v1/contacts/ui-1/explain?after=\(seq)")
            .decode(ExplainDocument.self).entries.count
        #expect(entries == 10)

        let page = try daemon.admin().request("GET", "/ui/contacts/ui-1")
        #expect(page.status == 200)
        #expect(page.headers["content-security-policy"]?.contains("default-src 'none'") == true)

        let url = "http://127.0.0.1:\(port)/ui/contacts/ui-1"
        let domPath = daemon.directory + "/contact.html"
        try Self.chromium(["--dump-dom", url], output: domPath)
        let dom = (try? String(contentsOfFile: domPath, encoding: .utf8)) ?? ""
        #expect(dom.contains("<svg id=\"score-chart\""), "the chart is there")
        #expect(dom.components(separatedBy: "class=\"award\"").count - 1 == entries, "one marker per audit entry")
        #expect(dom.contains("met at &lt;the fair&gt;"), "reasons are escaped")
        let references = try NSRegularExpression(pattern: #"(?:src|href)\s*=\s*"([^"]*)""#)
        let links = references.matches(in: dom, range: NSRange(dom.startIndex..., in: dom)).compactMap {
            Range($0.range(at: 1), in: dom).map { String(dom[$0]) }
        }
        #expect(links.allSatisfy { $0.hasPrefix("/") }, "only links within the UI: \(links)")
        #expect(!dom.contains("<script"), "no scripts")

        let screenshot = daemon.directory + "/contact.png"
        try Self.chromium(["--screenshot=\(screenshot)", url], output: daemon.directory + "/screenshot.log")
        let png = FileManager.default.contents(atPath: screenshot) ?? Data()
        #expect(png.count > 10_000, "a screenshot was taken")
        #expect(Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
        if let keep = ProcessInfo.processInfo.environment["TALLY_SCREENSHOT"] {
            try? png.write(to: URL(fileURLWithPath: keep))
        }

        // admin_http only answers requests addressed to the loopback host, and refuses changes from web pages.
        func status(_ arguments: [String]) throws -> String {
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: executable(["curl"]) ?? "/usr/bin/curl")
            curl.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}"] + arguments
            let output = Pipe()
            curl.standardOutput = output
            try curl.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            curl.waitUntilExit()
            return text
        }
        #expect(try status([url]) == "200")
        #expect(try status(["-H", "Host: evil.example:\(port)", url]) == "403", "DNS rebinding refused")
        let points = "http://127.0.0.1:\(port)/v1/contacts/ui-1/points"
        #expect(
            try status([
                "-X", "POST", "-H", "Origin: http://evil.example", "-H", "Content-Type: application/json",
                "-d", #"{"op":"set","value":1}"#, points,
            ]) == "403", "cross-origin change refused")
        #expect(
            try status(["-X", "POST", "-H", "Content-Type: application/x-www-form-urlencoded", "-d", "a=b", points])
                == "403", "form post refused")
        #expect(
            try status([
                "-X", "POST", "-H", "Content-Type: application/json", "-d", #"{"op":"plus","value":1}"#, points,
            ])
                == "202", "a local tool may change scores")

        let top = try daemon.admin().request("GET", "/ui/")
        #expect(top.status == 200)
        #expect(top.text.contains("/ui/contacts/ui-1"))
        let search = try daemon.admin().request("GET", "/ui/search?contact=ui-1")
        #expect(search.status == 303)
        #expect(search.headers["location"] == "/ui/contacts/ui-1")
    }
}
