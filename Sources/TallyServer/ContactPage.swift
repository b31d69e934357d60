import Foundation
import HTTPTypes
import Hummingbird
import TallyCore
import TallyEngine

/// The admin UI (`GET /ui/`, `GET /ui/contacts/{id}`): self-contained HTML pages — inline CSS, an inline SVG
/// chart, no scripts, fonts or images from anywhere — served with a Content-Security-Policy that forbids
/// loading anything else.
enum ContactPage {
    static let policy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"

    static let style = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
        header{background:#1d2330;color:#fff;padding:14px 28px;display:flex;gap:24px;align-items:center}
        header a{color:#9fc1ff;text-decoration:none}main{padding:24px 28px;max-width:1100px}
        .score{font-size:44px;font-weight:700}.muted{color:#667}.card{background:#fff;border-radius:10px;
        box-shadow:0 1px 3px #0002;padding:18px 22px;margin:0 0 18px}.chips span{display:inline-block;
        background:#e8eefc;color:#1d3b8f;border-radius:12px;padding:2px 10px;margin:2px 4px 2px 0;font-size:13px}
        .chips span.seg{background:#e6f5ea;color:#1e6b34}.chips span.camp{background:#fff1db;color:#8a4b00}
        .chips span.trig{background:#f1e8fc;color:#5b2a91}table{border-collapse:collapse;width:100%}
        td,th{text-align:left;padding:6px 8px;border-bottom:1px solid #eceef2;vertical-align:top;font-size:14px}
        td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.pos{color:#1e6b34}.neg{color:#a11}
        svg .award{cursor:help}svg .award:hover{stroke:#000;stroke-width:2}input{font:inherit;padding:6px 10px}
        .filters{display:flex;flex-wrap:wrap;gap:10px 16px;align-items:flex-end}.filters label{display:flex;
        flex-direction:column;font-size:12px;color:#556}.filters input{width:120px;padding:4px 8px}
        .filters select,.filters button{font:inherit;padding:4px 8px}.pager a{margin-right:18px}
        .error{border-left:4px solid #a11}svg .bar:hover{fill-opacity:.8}
        """

    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    static func page(title: String, body: String, status: HTTPResponse.Status = .ok) -> Response {
        let html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <meta name="viewport" content="width=device-width, initial-scale=1"><style>\(style)</style></head>
            <body><header><strong>Tally</strong><a href="/ui/">Top contacts</a><a href="/ui/contacts">Contacts</a>
            <form action="/ui/search" method="get"><input name="contact" placeholder="Contact id" aria-label="Contact id">
            </form></header><main>\(body)</main></body></html>
            """
        var buffer = ByteBuffer()
        buffer.writeString(html)
        return Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: policy, .cacheControl: "no-store",
            ],
            body: ResponseBody(byteBuffer: buffer))
    }

    static func link(_ contact: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#")
        let encoded = contact.addingPercentEncoding(withAllowedCharacters: allowed) ?? contact
        return "<a href=\"/ui/contacts/\(escape(encoded))\">\(escape(contact))</a>"
    }

    /// `GET /ui/`: the contacts with the highest scores.
    static func top(_ contacts: [(String, ContactState)]) -> Response {
        let rows = contacts.enumerated().map { index, item in
            let (contact, state) = item
            let tags = state.tags.sorted().map { "<span>\(escape($0))</span>" }.joined()
            return "<tr><td class=\"n\">\(index + 1)</td><td>\(link(contact))</td><td class=\"n\">\(state.points)</td>"
                + "<td class=\"chips\">\(tags)</td></tr>"
        }.joined()
        return page(
            title: "Tally — top contacts",
            body: """
                <h1>Top contacts</h1><div class="card"><table><tr><th>#</th><th>Contact</th><th>Points</th><th>Tags</th></tr>
                \(rows.isEmpty ? "<tr><td colspan=4 class=muted>No contacts yet.</td></tr>" : rows)</table></div>
                """)
    }

    /// `GET /ui/contacts/{id}`: scores, state, fired triggers, and the score over time from the audit trail.
    static func contact(
        _ id: String, state: ContactState, entries: [AuditEntry], total: Int, now: Int64? = nil
    ) -> Response {
        func chips(_ values: Set<String>, _ kind: String) -> String {
            values.isEmpty
                ? "<span class=\"muted\" style=\"background:none\">none</span>"
                : values.sorted().map { "<span class=\"\(kind)\">\(escape($0))</span>" }.joined()
        }
        let groups = state.groups.sorted { $0.key < $1.key }.map {
            "<div><span class=\"muted\">\(escape($0.key))</span> <strong>\($0.value)</strong></div>"
        }.joined()
        // F1: the fields as a two-column table, by name (bytes); values escaped, numbers as integers when whole.
        let fieldRows = state.fields.keys.sorted { ByteString($0) < ByteString($1) }.map { name in
            "<tr><td>\(escape(name))</td><td>\(escape(state.fields[name]?.description ?? ""))</td></tr>"
        }.joined()
        let fields =
            fieldRows.isEmpty
            ? "<span class=\"muted\">none</span>"
            : "<table class=\"fields\"><tr><th>Field</th><th>Value</th></tr>\(fieldRows)</table>"
        let rows = entries.reversed().map { entry in
            let sign = entry.delta >= 0 ? "pos" : "neg"
            return "<tr><td>\(timeElement(entry.at))</td><td>\(escape(entry.group ?? "main"))</td>"
                + "<td class=\"n \(sign)\">\(entry.delta >= 0 ? "+" : "")\(entry.delta)</td>"
                + "<td class=\"n\">\(entry.scoreAfter)</td><td>\(escape(entry.action)) <span class=\"muted\">v\(entry.version)</span></td>"
                + "<td>\(escape(entry.reason))"
                + (entry.origin.map { " <span class=\"muted\">from \(escape($0))</span>" } ?? "") + "</td></tr>"
        }.joined()
        let body = """
            <h1>\(escape(id))</h1>
            <div class="card" style="display:flex;gap:40px;align-items:center"><div><div class="muted">Score</div>
            <div class="score">\(state.points)</div></div>\(groups)
            <div class="muted">\(state.email.map { escape($0) } ?? "")</div></div>
            <div class="card"><h2>Score over time</h2>\(chart(entries, now: now))</div>
            <div class="card chips"><div><strong>Tags</strong> \(chips(state.tags, "tag"))</div>
            <div><strong>Segments</strong> \(chips(state.segments, "seg"))</div>
            <div><strong>Campaigns</strong> \(chips(state.campaigns, "camp"))</div>
            <div><strong>Triggers fired</strong> \(chips(state.fired, "trig"))</div></div>
            <div class="card"><h2>Fields</h2>\(fields)</div>
            <div class="card"><h2>Why: \(total > entries.count ? "the newest \(entries.count) of \(total) changes" : "every change")</h2><table><tr><th>When (UTC)</th><th>Score</th><th>Change</th><th>After</th>
            <th>By</th><th>Reason</th></tr>\(rows.isEmpty ? "<tr><td colspan=6 class=muted>No score changes.</td></tr>" : rows)
            </table></div>
            """
        return page(title: "Tally — \(id)", body: body)
    }

    /// A time as people read it: `2026-12-01 14:03` in UTC (with seconds when `seconds`), for years 1–9999.
    static func humanTime(_ at: Int64, seconds: Bool = false) -> String {
        String(Timestamp.format(at).prefix(seconds ? 19 : 16)).replacingOccurrences(of: "T", with: " ")
    }

    /// A `<time>` element with the human form, and the full RFC 3339 time in its `title` and `datetime`.
    static func timeElement(_ at: Int64) -> String {
        let iso = Timestamp.format(at)
        return "<time datetime=\"\(iso)\" title=\"\(iso)\">\(humanTime(at))</time>"
    }

    /// An SVG step chart of the main score (and each group's) over event time, with one marker per audit entry
    /// whose tooltip (`<title>`) is the entry's reason. Every series starts at the chart's left edge at its value
    /// before its first change (0 for a group that had none) and runs to the right edge, `now`: the later of the
    /// last change and the fold's clock (D1), so that a score reads as held until now.
    static func chart(_ entries: [AuditEntry], now: Int64? = nil) -> String {
        let width = 1000.0
        let height = 260.0
        let pad = 40.0
        let bottom = 36.0
        guard !entries.isEmpty else {
            return "<svg id=\"score-chart\" width=\"\(Int(width))\" height=\"60\" role=\"img\"><text x=\"10\" y=\"30\" "
                + "fill=\"#667\">No score changes yet.</text></svg>"
        }
        let times = entries.map(\.at)
        let scores = entries.map(\.scoreAfter) + entries.map { $0.scoreAfter - $0.delta } + [0]
        let minT = times.min() ?? 0
        let latest = times.max() ?? 0
        let maxT = max(latest, now ?? latest)
        let (minS, maxS) = (Double(scores.min() ?? 0), Double(scores.max() ?? 0))
        let (left, right) = (pad + 10, width - pad)
        func x(_ at: Int64) -> Double {
            maxT == minT ? right : left + (right - left) * Double(at - minT) / Double(maxT - minT)
        }
        func y(_ score: Int64) -> Double {
            maxS == minS
                ? height / 2 : height - bottom - (height - bottom - pad) * (Double(score) - minS) / (maxS - minS)
        }
        let palette = ["#2f6fde", "#1e9b53", "#d0781b", "#9b3fd0", "#c23a5a"]
        var lines = ""
        let series = [String?](Set(entries.map(\.group))).sorted { ($0 ?? "") < ($1 ?? "") }
        for (index, group) in series.enumerated() {
            let points = entries.filter { $0.group == group }
            // From the left edge at the value before the first change, a step at each change, on to the right edge.
            var path = "M \(left) \(y(points[0].scoreAfter - points[0].delta))"
            for entry in points { path += " H \(x(entry.at)) V \(y(entry.scoreAfter))" }
            path += " H \(right)"
            lines +=
                "<path class=\"series\" data-series=\"\(escape(group ?? "main"))\" d=\"\(path)\" fill=\"none\" "
                + "stroke=\"\(palette[index % palette.count])\" stroke-width=\"2\"/>"
        }
        var markers = ""
        for entry in entries {
            let color = palette[(series.firstIndex { $0 == entry.group } ?? 0) % palette.count]
            let label =
                "\(humanTime(entry.at, seconds: true)) UTC \(entry.group ?? "main") "
                + "\(entry.delta >= 0 ? "+" : "")\(entry.delta) → \(entry.scoreAfter) (\(entry.action)): \(entry.reason)"
            markers +=
                "<circle class=\"award\" data-seq=\"\(entry.seq)\" cx=\"\(x(entry.at))\" cy=\"\(y(entry.scoreAfter))\" "
                + "r=\"5\" fill=\"\(color)\"><title>\(escape(label))</title></circle>"
        }
        let legend = series.enumerated().map { index, group in
            "<text x=\"\(left + Double(index) * 140)\" y=\"16\" fill=\"\(palette[index % palette.count])\">"
                + "\(escape(group ?? "main score"))</text>"
        }.joined()
        // Time ticks: five across the span, with seconds when the span is under ten minutes; the last one is now.
        let seconds = maxT - minT < 600_000
        var ticks = ""
        let tickCount = maxT == minT ? 1 : 5
        for tick in 0..<tickCount {
            let at = tickCount == 1 ? maxT : minT + (maxT - minT) * Int64(tick) / Int64(tickCount - 1)
            let anchor = tick == 0 && tickCount > 1 ? "start" : tick == tickCount - 1 ? "end" : "middle"
            let label =
                humanTime(at, seconds: seconds) + (tick == tickCount - 1 && now != nil && maxT > latest ? " (now)" : "")
            ticks +=
                "<line x1=\"\(x(at))\" y1=\"\(height - bottom)\" x2=\"\(x(at))\" y2=\"\(height - bottom + 4)\" stroke=\"#99a\"/>"
                + "<text class=\"tick\" x=\"\(x(at))\" y=\"\(height - bottom + 17)\" fill=\"#667\" font-size=\"11\" "
                + "text-anchor=\"\(anchor)\"><title>\(Timestamp.format(at))</title>\(label)</text>"
        }
        let axis =
            "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(right)\" y2=\"\(y(0))\" stroke=\"#ccd\"/>"
            + "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(right)\" y2=\"\(height - bottom)\" stroke=\"#99a\"/>"
            + "<text x=\"\(left - 6)\" y=\"\(y(Int64(maxS)) + 4)\" fill=\"#667\" font-size=\"11\" text-anchor=\"end\">\(Int64(maxS))</text>"
            + "<text x=\"\(left - 6)\" y=\"\(y(Int64(minS)) + 4)\" fill=\"#667\" font-size=\"11\" text-anchor=\"end\">\(Int64(minS))</text>"
            + "<text x=\"\(right)\" y=\"\(height - 4)\" fill=\"#99a\" font-size=\"10\" text-anchor=\"end\">UTC</text>"
            + ticks
        return "<svg id=\"score-chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"100%\" role=\"img\" "
            + "aria-label=\"Score over time\" xmlns=\"http://www.w3.org/2000/svg\">\(axis)\(lines)\(markers)\(legend)</svg>"
    }
}

/// What the admin UI reads (L3): a node's projections, or a cluster's partitions through any node.
struct UISource: Sendable {
    /// A contact's page: the contact its id resolves to, its newest audit entries and how many there are in all,
    /// and the fold's now (D1).
    struct ContactView: Sendable {
        var id: String
        var state: ContactState
        var entries: [AuditEntry]
        var total: Int
        var now: Int64?
    }

    /// The `limit` contacts with the highest main scores.
    var top: @Sendable (_ limit: Int) async throws -> [(id: String, state: ContactState)]
    var list: @Sendable (ContactListQuery) async throws -> ContactListPage
    var histogram: @Sendable (ContactListQuery) async throws -> ScoreHistogram
    /// Nil for a contact never seen.
    var contact: @Sendable (String) async throws -> ContactView?
}

extension Routes {
    /// The admin UI of a node, read from its projections.
    var uiSource: UISource {
        let engine = self.engine
        return UISource(
            top: { limit in try await engine.topContacts(limit: limit) },
            list: { query in try await engine.listContacts(query) },
            histogram: { query in try await engine.scoreHistogram(query) },
            contact: { id in
                guard let (contact, explanation) = try await engine.explain(contact: id) else { return nil }
                return UISource.ContactView(
                    id: contact.id, state: contact.state, entries: explanation.entries, total: explanation.total,
                    now: (try? engine.clockState().now) ?? nil)
            })
    }

    /// Adds the UI routes, which read from `source`.
    static func addUIRoutes(to router: Router<BasicRequestContext>, source: UISource) {
        router.get("/ui") { _, _ in ContactPage.top(try await source.top(50).map { ($0.id, $0.state) }) }
        router.get("/ui/contacts") { request, _ in try await contactsPage(request, source: source) }
        router.get("/ui/search") { request, _ in
            let contact = request.uri.queryParameters["contact"].map(String.init) ?? ""
            var allowed = CharacterSet.urlPathAllowed
            allowed.remove(charactersIn: "/?#")
            let target =
                contact.isEmpty
                ? "/ui/" : "/ui/contacts/" + (contact.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
            return Response(status: .seeOther, headers: [.location: target])
        }
        router.get("/ui/contacts/:id") { _, context in
            let id = try Self.contactID(context)
            guard let view = try await source.contact(id) else {
                throw APIError(.notFound, "unknown contact \"\(id)\"")
            }
            return ContactPage.contact(
                view.id, state: view.state, entries: view.entries, total: view.total, now: view.now)
        }
    }
}
