import Foundation
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
        td.n{text-align:right;font-variant-numeric:tabular-nums}.pos{color:#1e6b34}.neg{color:#a11}
        svg .award{cursor:help}svg .award:hover{stroke:#000;stroke-width:2}input{font:inherit;padding:6px 10px}
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

    static func page(title: String, body: String) -> Response {
        let html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <meta name="viewport" content="width=device-width, initial-scale=1"><style>\(style)</style></head>
            <body><header><strong>Tally</strong><a href="/ui/">Top contacts</a>
            <form action="/ui/search" method="get"><input name="contact" placeholder="Contact id" aria-label="Contact id">
            </form></header><main>\(body)</main></body></html>
            """
        var buffer = ByteBuffer()
        buffer.writeString(html)
        return Response(
            status: .ok,
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
    static func contact(_ id: String, state: ContactState, entries: [AuditEntry], total: Int) -> Response {
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
            return "<tr><td>\(Timestamp.format(entry.at))</td><td>\(escape(entry.group ?? "main"))</td>"
                + "<td class=\"n \(sign)\">\(entry.delta >= 0 ? "+" : "")\(entry.delta)</td>"
                + "<td class=\"n\">\(entry.scoreAfter)</td><td>\(escape(entry.action)) <span class=\"muted\">v\(entry.version)</span></td>"
                + "<td>\(escape(entry.reason))</td></tr>"
        }.joined()
        let body = """
            <h1>\(escape(id))</h1>
            <div class="card" style="display:flex;gap:40px;align-items:center"><div><div class="muted">Score</div>
            <div class="score">\(state.points)</div></div>\(groups)
            <div class="muted">\(state.email.map { escape($0) } ?? "")</div></div>
            <div class="card"><h2>Score over time</h2>\(chart(entries))</div>
            <div class="card chips"><div><strong>Tags</strong> \(chips(state.tags, "tag"))</div>
            <div><strong>Segments</strong> \(chips(state.segments, "seg"))</div>
            <div><strong>Campaigns</strong> \(chips(state.campaigns, "camp"))</div>
            <div><strong>Triggers fired</strong> \(chips(state.fired, "trig"))</div></div>
            <div class="card"><h2>Fields</h2>\(fields)</div>
            <div class="card"><h2>Why: \(total > entries.count ? "the newest \(entries.count) of \(total) changes" : "every change")</h2><table><tr><th>When</th><th>Score</th><th>Change</th><th>After</th>
            <th>By</th><th>Reason</th></tr>\(rows.isEmpty ? "<tr><td colspan=6 class=muted>No score changes.</td></tr>" : rows)
            </table></div>
            """
        return page(title: "Tally — \(id)", body: body)
    }

    /// An SVG step chart of the main score (and each group's) over event time, with one marker per audit entry
    /// whose tooltip (`<title>`) is the entry's reason.
    static func chart(_ entries: [AuditEntry]) -> String {
        let width = 1000.0
        let height = 260.0
        let pad = 40.0
        guard !entries.isEmpty else {
            return "<svg id=\"score-chart\" width=\"\(Int(width))\" height=\"60\" role=\"img\"><text x=\"10\" y=\"30\" "
                + "fill=\"#667\">No score changes yet.</text></svg>"
        }
        let times = entries.map(\.at)
        let scores = entries.map(\.scoreAfter) + [0]
        let (minT, maxT) = (times.min() ?? 0, times.max() ?? 0)
        let (minS, maxS) = (Double(scores.min() ?? 0), Double(scores.max() ?? 0))
        func x(_ at: Int64) -> Double {
            maxT == minT ? width / 2 : pad + (width - 2 * pad) * Double(at - minT) / Double(maxT - minT)
        }
        func y(_ score: Int64) -> Double {
            maxS == minS ? height / 2 : height - pad - (height - 2 * pad) * (Double(score) - minS) / (maxS - minS)
        }
        let palette = ["#2f6fde", "#1e9b53", "#d0781b", "#9b3fd0", "#c23a5a"]
        var lines = ""
        let series = [String?](Set(entries.map(\.group))).sorted { ($0 ?? "") < ($1 ?? "") }
        for (index, group) in series.enumerated() {
            let points = entries.filter { $0.group == group }
            var path = "M \(x(points[0].at)) \(y(points[0].scoreAfter - points[0].delta))"
            for entry in points { path += " H \(x(entry.at)) V \(y(entry.scoreAfter))" }
            lines +=
                "<path d=\"\(path)\" fill=\"none\" stroke=\"\(palette[index % palette.count])\" stroke-width=\"2\"/>"
        }
        var markers = ""
        for entry in entries {
            let color = palette[(series.firstIndex { $0 == entry.group } ?? 0) % palette.count]
            let label =
                "\(Timestamp.format(entry.at)) \(entry.group ?? "main") \(entry.delta >= 0 ? "+" : "")\(entry.delta)"
                + " → \(entry.scoreAfter) (\(entry.action)): \(entry.reason)"
            markers +=
                "<circle class=\"award\" data-seq=\"\(entry.seq)\" cx=\"\(x(entry.at))\" cy=\"\(y(entry.scoreAfter))\" "
                + "r=\"5\" fill=\"\(color)\"><title>\(escape(label))</title></circle>"
        }
        let legend = series.enumerated().map { index, group in
            "<text x=\"\(pad + Double(index) * 120)\" y=\"16\" fill=\"\(palette[index % palette.count])\">"
                + "\(escape(group ?? "main score"))</text>"
        }.joined()
        let axis =
            "<line x1=\"\(pad)\" y1=\"\(y(0))\" x2=\"\(width - pad)\" y2=\"\(y(0))\" stroke=\"#ccd\"/>"
            + "<text x=\"4\" y=\"\(y(Int64(maxS)) + 4)\" fill=\"#667\" font-size=\"11\">\(Int64(maxS))</text>"
            + "<text x=\"4\" y=\"\(y(Int64(minS)) + 4)\" fill=\"#667\" font-size=\"11\">\(Int64(minS))</text>"
            + "<text x=\"\(pad)\" y=\"\(height - 8)\" fill=\"#667\" font-size=\"11\">\(Timestamp.format(minT))</text>"
            + "<text x=\"\(width - pad)\" y=\"\(height - 8)\" fill=\"#667\" font-size=\"11\" text-anchor=\"end\">"
            + "\(Timestamp.format(maxT))</text>"
        return "<svg id=\"score-chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"100%\" role=\"img\" "
            + "aria-label=\"Score over time\" xmlns=\"http://www.w3.org/2000/svg\">\(axis)\(lines)\(markers)\(legend)</svg>"
    }
}

extension Routes {
    /// Adds the UI routes.
    func addUIRoutes(to router: Router<BasicRequestContext>) {
        router.get("/ui") { _, _ in try await self.topContacts() }
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
            guard let (state, explanation) = try await engine.explain(contact: id) else {
                throw APIError(.notFound, "unknown contact \"\(id)\"")
            }
            return ContactPage.contact(id, state: state, entries: explanation.entries, total: explanation.total)
        }
    }

    /// The 50 contacts with the highest main scores.
    func topContacts() async throws -> Response {
        ContactPage.top(try await engine.topContacts(limit: 50).map { ($0.id, $0.state) })
    }
}
