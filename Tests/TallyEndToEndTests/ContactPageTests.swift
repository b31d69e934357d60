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

/// L3: the contacts page (filters, pages, the score histogram) and the contact page's chart, in headless Chromium
/// on a real daemon, with screenshots kept in `Docs/screenshots/` for people to look at.
extension ContactPageTests {
    static let listRules = """
        groups: [product, pricing]
        actions:
          - { id: download, type: asset.download, delta: 10, repeatable: true }
          - { id: open, type: email.open, delta: 2, repeatable: true }
          - { id: demo, type: form.submit, delta: 25, group: product, repeatable: true }
          - { id: pricing, type: url.hit, delta: 5, group: pricing, url: "https://x.com/pricing*" }
        triggers:
          - id: mql
            min_points: 50
            events:
              - { id: tag, type: tags.modify, add: [mql] }
              - { id: seg, type: segments.modify, add: [sales] }

        """

    static var screenshots: URL {
        Nginx.repositoryRoot.appendingPathComponent("Docs/screenshots")
    }

    /// Takes a screenshot of `url` into `path`, checks it is a PNG of some size, and copies it to `Docs/screenshots`.
    static func screenshot(_ url: String, _ path: String, keepAs name: String, in directory: String) throws {
        try chromium(["--screenshot=\(path)", url], output: directory + "/\(name).log")
        let png = FileManager.default.contents(atPath: path) ?? Data()
        #expect(png.count > 10_000, "a screenshot was taken")
        #expect(Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
        try FileManager.default.createDirectory(at: screenshots, withIntermediateDirectories: true)
        try png.write(to: screenshots.appendingPathComponent(name))
    }

    /// The contact ids in the contacts table of a page.
    static func listedContacts(_ html: String) -> [String] {
        let pattern = try? NSRegularExpression(pattern: #"<tr class="contact"><td><a href="/ui/contacts/([^"]*)">"#)
        return (pattern?.matches(in: html, range: NSRange(html.startIndex..., in: html)) ?? []).compactMap {
            Range($0.range(at: 1), in: html).map { String(html[$0]).removingPercentEncoding ?? "" }
        }
    }

    @Test(
        "L3 the contacts page filters, pages with a working next link and draws the score histogram in Chromium",
        .disabled(if: browserToolsMissing, "chromium is not installed (scripts/install-deps --test installs it)")
    )
    func contactsPage() throws {
        let port = freeLoopbackPort()
        let daemon = try Daemon(
            rules: Self.listRules, extraConfig: "admin_http: 127.0.0.1:\(port)\nclock_interval: off")
        try daemon.start()
        defer { daemon.stop() }
        // 120 contacts: c-000…c-119 with 1–12 downloads and 0–4 opens (10–128 points); those at 50 or more get the
        // tag mql.
        var lines: [String] = []
        var expected: [String: Int64] = [:]
        for index in 0..<120 {
            let contact = "c-" + String(format: "%03d", index)
            let downloads = 1 + (index * 7) % 12
            let opens = index % 5
            expected[contact] = Int64(downloads * 10 + opens * 2)
            for _ in 0..<downloads {
                lines.append(#"{"type":"asset.download","contact":"\#(contact)","item":"guide"}"#)
            }
            for open in 0..<opens {
                lines.append(#"{"type":"email.open","contact":"\#(contact)","item":"n\#(open)"}"#)
            }
        }
        lines.append(#"{"type":"asset.download","contact":"<b>&odd \"id","item":"guide"}"#)
        let receipt = try daemon.post(lines).receipt
        let head = try #require(receipt.lastSeq)
        #expect(try daemon.contact("c-000", after: head).status == 200)
        let mql = Set(expected.filter { $0.value >= 50 }.keys)

        // The filter applies: only mql contacts of 50–100 points, highest first, 20 a page.
        let query = "tag=mql&max_points=100&limit=20"
        let first = try daemon.admin().request("GET", "/ui/contacts?\(query)")
        #expect(first.status == 200)
        #expect(first.headers["content-security-policy"]?.contains("default-src 'none'") == true)
        let firstIDs = Self.listedContacts(first.text)
        #expect(firstIDs.count == 20)
        #expect(firstIDs.allSatisfy { mql.contains($0) && (expected[$0] ?? 0) <= 100 }, "\(firstIDs)")
        #expect(firstIDs.map { expected[$0] ?? 0 } == firstIDs.map { expected[$0] ?? 0 }.sorted(by: >))
        // The next page's link carries the filters and the cursor, and leads to the rest, with no repeat.
        let link = try #require(
            first.text.range(of: #"<a id="next" rel="next" href="([^"]*)""#, options: .regularExpression).map {
                String(first.text[$0])
            })
        let href = String(link.dropFirst(#"<a id="next" rel="next" href=""#.count).dropLast())
            .replacingOccurrences(of: "&amp;", with: "&")
        #expect(href.hasPrefix("/ui/contacts?") && href.contains("tag=mql") && href.contains("cursor="))
        var seen = firstIDs
        var next: String? = href
        var pages = 1
        while let path = next, pages < 20 {
            let page = try daemon.admin().request("GET", path)
            #expect(page.status == 200)
            let ids = Self.listedContacts(page.text)
            #expect(ids.allSatisfy { mql.contains($0) && (expected[$0] ?? 0) <= 100 })
            seen += ids
            pages += 1
            next = page.text.range(of: #"<a id="next" rel="next" href="([^"]*)""#, options: .regularExpression).map {
                String(page.text[$0]).dropFirst(#"<a id="next" rel="next" href=""#.count).dropLast()
                    .replacingOccurrences(of: "&amp;", with: "&")
            }
        }
        let matching = expected.filter { mql.contains($0.key) && $0.value <= 100 }
        #expect(seen.count == matching.count, "every matching contact once")
        #expect(Set(seen) == Set(matching.keys))

        // The histogram: one bar per bucket of the matching contacts' scores, counts adding up to the list.
        #expect(first.text.contains("<svg id=\"score-histogram\""))
        let counts = try NSRegularExpression(
            pattern: #"<rect class="bar" data-low="(-?\d+)" data-high="(-?\d+)" data-count="(\d+)""#)
        let bars = counts.matches(in: first.text, range: NSRange(first.text.startIndex..., in: first.text)).compactMap {
            match -> (Int64, Int64, Int)? in
            guard let low = Range(match.range(at: 1), in: first.text).flatMap({ Int64(first.text[$0]) }),
                let high = Range(match.range(at: 2), in: first.text).flatMap({ Int64(first.text[$0]) }),
                let count = Range(match.range(at: 3), in: first.text).flatMap({ Int(first.text[$0]) })
            else { return nil }
            return (low, high, count)
        }
        #expect(bars.count >= 5, "bars drawn: \(bars.count)")
        #expect(bars.reduce(0) { $0 + $1.2 } == matching.count)
        for (low, high, count) in bars {
            #expect(count == matching.values.filter { (low...high).contains($0) }.count, "bucket \(low)–\(high)")
        }
        #expect(!first.text.contains("id=\"approximate\""), "exact within the budget")

        // A bad parameter is named on the page, with the form kept as typed; ids are escaped in the table.
        let bad = try daemon.admin().request("GET", "/ui/contacts?min_points=lots&tag=mql")
        #expect(bad.status == 400)
        #expect(bad.text.contains("min_points") && bad.text.contains("value=\"lots\""))
        let odd = try daemon.admin().request("GET", "/ui/contacts?sort=id&max_points=10")
        #expect(odd.text.contains("&lt;b&gt;&amp;odd &quot;id"))
        #expect(!odd.text.contains("<b>&odd"))

        // In Chromium: the DOM has the table, the histogram and no scripts; a screenshot to look at.
        let url = "http://127.0.0.1:\(port)/ui/contacts?\(query)"
        let domPath = daemon.directory + "/contacts.html"
        try Self.chromium(["--dump-dom", url], output: domPath)
        let dom = (try? String(contentsOfFile: domPath, encoding: .utf8)) ?? ""
        #expect(Self.listedContacts(dom) == firstIDs, "Chromium renders the same page")
        #expect(dom.components(separatedBy: "<rect class=\"bar").count - 1 == bars.count)
        #expect(!dom.contains("<script"), "no scripts")
        try Self.screenshot(
            url, daemon.directory + "/contacts-page.png", keepAs: "contacts-page.png", in: daemon.directory)
        // The top contacts page links to the list.
        #expect(try daemon.admin().request("GET", "/ui/").text.contains("href=\"/ui/contacts\""))
    }

    @Test(
        "L3 the contact page draws every series to now, a one-award group as a step, and human times, in Chromium",
        .disabled(if: browserToolsMissing, "chromium is not installed (scripts/install-deps --test installs it)")
    )
    func contactChart() throws {
        let port = freeLoopbackPort()
        let daemon = try Daemon(
            rules: Self.listRules, extraConfig: "admin_http: 127.0.0.1:\(port)\nclock_interval: off")
        try daemon.start()
        defer { daemon.stop() }
        // 40 events over ten days: 36 opens (main), 3 demos (product), 1 pricing visit (pricing: its only change).
        let start: Int64 = 1_795_000_000_000  // 2026-11-18T…Z
        var lines: [String] = []
        for index in 0..<40 {
            let at = start + Int64(index) * 6 * 3_600_000 + 123
            let line: String =
                switch index {
                case 5, 17, 29: #"{"type":"form.submit","contact":"lead-40","item":"demo","at":\#(at)}"#
                case 11: #"{"type":"url.hit","contact":"lead-40","url":"https://x.com/pricing","at":\#(at)}"#
                default: #"{"type":"email.open","contact":"lead-40","item":"n\#(index)","at":\#(at)}"#
                }
            lines.append(line)
        }
        _ = try daemon.post(lines)
        // Now: two days after the last event.
        let now = start + 41 * 6 * 3_600_000
        let clock = try daemon.adminRequest("POST", "/v1/clock", json: #"{"at":\#(now)}"#)
        let seq = try #require(try clock.receipt.lastSeq)
        #expect(try daemon.contact("lead-40", after: seq).document?.points == 72)

        let page = try daemon.admin().request("GET", "/ui/contacts/lead-40")
        #expect(page.status == 200)
        let html = page.text
        // Every series ends at the right edge (x = 960), the same for all three.
        let paths = try NSRegularExpression(pattern: #"<path class="series" data-series="([^"]*)" d="([^"]*)""#)
        let series = paths.matches(in: html, range: NSRange(html.startIndex..., in: html)).compactMap {
            match -> (String, String)? in
            guard let name = Range(match.range(at: 1), in: html), let d = Range(match.range(at: 2), in: html) else {
                return nil
            }
            return (String(html[name]), String(html[d]))
        }
        #expect(series.map(\.0).sorted() == ["main", "pricing", "product"])
        for (name, d) in series {
            #expect(d.hasSuffix(" H 960.0"), "\(name) runs to the right edge: \(d)")
            #expect(d.hasPrefix("M 50.0 "), "\(name) starts at the left edge: \(d)")
        }
        // The one-award group: from 0 at the left edge, a step at its award, then flat: not a bare vertical stroke.
        let pricing = try #require(series.first { $0.0 == "pricing" }?.1)
        let parts = pricing.split(separator: " ")
        #expect(parts.count == 9, "M x y H x V y H x: \(pricing)")
        if parts.count == 9 {
            #expect(parts[1] != parts[4], "the step's horizontal run before the award has length")
            #expect(parts[4] != parts[8], "and after it")
        }
        // Times as people read them, the full time on hover.
        // No RFC 3339 time in any visible text (tooltips, `<title>`, and attributes aside).
        let visible = html.replacingOccurrences(of: #"<title>[^<]*</title>"#, with: "", options: .regularExpression)
        #expect(
            visible.range(of: #">[^<]*\d\d:\d\d:\d\d(\.\d+)?Z[^<]*<"#, options: .regularExpression) == nil,
            "no raw ISO times in the text")
        #expect(html.contains("<time datetime=\"2026-11-18T"))
        #expect(
            html.range(
                of: #"title="2026-11-\d\dT\d\d:\d\d:\d\d\.123Z">2026-11-\d\d \d\d:\d\d</time>"#,
                options: .regularExpression) != nil)
        #expect(html.contains("(now)"), "the right end is labelled now")

        let url = "http://127.0.0.1:\(port)/ui/contacts/lead-40"
        let domPath = daemon.directory + "/lead-40.html"
        try Self.chromium(["--dump-dom", url], output: domPath)
        let dom = (try? String(contentsOfFile: domPath, encoding: .utf8)) ?? ""
        #expect(dom.components(separatedBy: "class=\"award\"").count - 1 == 40, "one marker per change")
        try Self.screenshot(
            url, daemon.directory + "/contact-page.png", keepAs: "contact-page.png", in: daemon.directory)
    }
}
