import Foundation
import Hummingbird
import TallyCore
import TallyEngine

/// The admin UI's contacts page (`GET /ui/contacts`, L3): the list filters of `GET /v1/contacts` as a form, one page
/// of the matching contacts with a link to the next, and an SVG histogram of the score distribution. Server-rendered,
/// no scripts, like the other ``ContactPage`` pages.
enum ContactsPage {
    /// Contacts on one page of the UI when the query names no `limit`.
    static let defaultLimit = 50

    /// The query string of a list page: the query's filters and order, `limit` when the user chose one, and `cursor`.
    static func queryString(_ query: ContactListQuery, limit: Int?, cursor: String?) -> String {
        var pairs: [(String, String)] = []
        if let value = query.minPoints { pairs.append(("min_points", String(value))) }
        if let value = query.maxPoints { pairs.append(("max_points", String(value))) }
        for (name, value) in [
            ("group", query.group), ("tag", query.tag), ("segment", query.segment), ("campaign", query.campaign),
            ("trigger", query.trigger),
        ] {
            if let value { pairs.append((name, value)) }
        }
        pairs.append(("sort", query.sort.rawValue))
        if let limit { pairs.append(("limit", String(limit))) }
        if let cursor { pairs.append(("cursor", cursor)) }
        return pairs.map { "\($0)=\(encode($1))" }.joined(separator: "&")
    }

    /// Percent-encodes a query value byte by byte: only unreserved ASCII stays as it is.
    static func encode(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.append(Character(Unicode.Scalar(byte)))
            default:
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }

    /// A count with thousands separated by commas: `915,963`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { result += "," }
            result.append(digit)
        }
        return (value < 0 ? "-" : "") + result
    }

    static func chips(_ values: [String], _ kind: String = "") -> String {
        values.map { "<span class=\"\(kind)\">\(ContactPage.escape($0))</span>" }.joined()
    }

    /// The page: the filter form, the histogram, the table and the next page's link. `error` replaces the results
    /// when the query was refused.
    /// `form` holds the request's parameters as typed, so that a refused query keeps them in the form.
    static func render(
        form values: [String: String], query: ContactListQuery, limit: Int?, page: ContactListPage?,
        histogram: ScoreHistogram?, error: APIError? = nil
    ) -> Response {
        let escape = ContactPage.escape
        func field(_ name: String, _ label: String, type: String = "text") -> String {
            "<label>\(label)<input name=\"\(name)\" type=\"\(type)\" value=\"\(escape(values[name] ?? ""))\"></label>"
        }
        let sorts = [("-points", "points, highest first"), ("points", "points, lowest first"), ("id", "contact id")]
            .map { value, label in
                "<option value=\"\(value)\"\((values["sort"] ?? "-points") == value ? " selected" : "")>\(label)</option>"
            }.joined()
        let form = """
            <form class="card filters" id="filters" action="/ui/contacts" method="get">
            \(field("min_points", "Min points", type: "number"))\(field("max_points", "Max points", type: "number"))
            \(field("group", "Group"))\(field("tag", "Tag"))\(field("segment", "Segment"))\(field("campaign", "Campaign"))
            \(field("trigger", "Trigger fired"))<label>Sort<select name="sort">\(sorts)</select></label>
            \(field("limit", "Per page", type: "number"))
            <button type="submit">Filter</button> <a href="/ui/contacts">Clear</a></form>
            """
        var body = "<h1>Contacts</h1>\(form)"
        if let error {
            body +=
                "<div class=\"card error\" id=\"error\"><strong>\(error.status.code)</strong> "
                + "\(escape(error.message))</div>"
            return ContactPage.page(title: "Tally — contacts", body: body, status: error.status)
        }
        if let histogram { body += "<div class=\"card\">\(Self.histogram(histogram))</div>" }
        if let page {
            let scoreHeader = query.group.map { "<th class=\"n\">\(escape($0))</th>" } ?? ""
            let rows = page.contacts.map { id, state in
                let groupScore =
                    query.group.map { "<td class=\"n\">\(state.groups[$0].map(String.init) ?? "")</td>" } ?? ""
                let groups = state.groups.sorted { ByteString($0.key) < ByteString($1.key) }.map {
                    "<span>\(escape($0.key)) \($0.value)</span>"
                }.joined()
                return "<tr class=\"contact\"><td>\(ContactPage.link(id))</td><td class=\"n\">\(state.points)</td>"
                    + "\(groupScore)<td class=\"chips\">\(groups)</td>"
                    + "<td class=\"chips\">\(chips(state.tags.sorted(by: ByteString.precedes)))</td>"
                    + "<td class=\"chips\">\(chips(state.segments.sorted(by: ByteString.precedes), "seg"))</td></tr>"
            }.joined()
            let columns = 5 + (query.group == nil ? 0 : 1)
            let empty = "<tr><td colspan=\(columns) class=muted>No contacts on this page.</td></tr>"
            var links: [String] = []
            if query.cursor != nil {
                links.append(
                    "<a id=\"first\" href=\"/ui/contacts?\(escape(queryString(query, limit: limit, cursor: nil)))\">"
                        + "← First page</a>")
            }
            if let next = page.next {
                links.append(
                    "<a id=\"next\" rel=\"next\" href=\"/ui/contacts?"
                        + "\(escape(queryString(query, limit: limit, cursor: next)))\">Next page →</a>")
            } else {
                links.append("<span class=\"muted\">End of the list.</span>")
            }
            body += """
                <div class="card"><table id="contacts"><tr><th>Contact</th><th class="n">Points</th>\(scoreHeader)<th>Groups</th>
                <th>Tags</th><th>Segments</th></tr>\(rows.isEmpty ? empty : rows)</table>
                <p class="pager">\(links.joined(separator: " "))</p></div>
                """
        }
        return ContactPage.page(title: "Tally — contacts", body: body)
    }

    /// The histogram as an SVG bar chart: one bar per bucket, its count above it; a bucket whose count is a lower
    /// bound (the scan's budget ran out) is drawn hatched and labelled "≥".
    static func histogram(_ histogram: ScoreHistogram) -> String {
        let escape = ContactPage.escape
        let score = histogram.group.map { "the \(escape($0)) score" } ?? "the main score"
        guard !histogram.buckets.isEmpty else {
            return "<h2>Distribution of \(score)</h2><svg id=\"score-histogram\" width=\"600\" height=\"40\" "
                + "role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"0\" y=\"24\" fill=\"#667\">"
                + "No contacts have a score within these bounds.</text></svg>"
        }
        let (width, height, left, right, top, bottom) = (1000.0, 230.0, 56.0, 16.0, 22.0, 40.0)
        let buckets = histogram.buckets
        let most = Double(max(1, buckets.map(\.count).max() ?? 1))
        let slot = (width - left - right) / Double(buckets.count)
        func y(_ count: Int) -> Double { height - bottom - (height - top - bottom) * Double(count) / most }
        func range(_ bucket: ScoreHistogram.Bucket) -> String {
            bucket.low == bucket.high ? "\(bucket.low)" : "\(bucket.low) to \(bucket.high)"
        }
        var bars = ""
        let labelEvery = buckets.count > 12 ? 2 : 1
        for (index, bucket) in buckets.enumerated() {
            let x = left + slot * Double(index)
            let count = (bucket.complete ? "" : "≥") + grouped(bucket.count)
            let barHeight = max(bucket.count > 0 ? 1 : 0, height - bottom - y(bucket.count))
            let contacts = bucket.count == 1 && bucket.complete ? "contact" : "contacts"
            bars +=
                "<rect class=\"bar\(bucket.complete ? "" : " partial")\" data-low=\"\(bucket.low)\" "
                + "data-high=\"\(bucket.high)\" data-count=\"\(bucket.count)\" x=\"\(x + 2)\" "
                + "y=\"\(height - bottom - barHeight)\" width=\"\(max(1, slot - 4))\" height=\"\(barHeight)\" "
                + "fill=\"\(bucket.complete ? "#2f6fde" : "url(#partial)")\" stroke=\"#2f6fde\""
                + "\(bucket.complete ? "" : " stroke-dasharray=\"4 3\"")><title>\(range(bucket)) points: \(count) "
                + "\(contacts)</title></rect>"
            if bucket.count > 0 || !bucket.complete {
                bars +=
                    "<text x=\"\(x + slot / 2)\" y=\"\(height - bottom - barHeight - 5)\" text-anchor=\"middle\" "
                    + "font-size=\"11\" fill=\"#334\">\(count)</text>"
            }
            if index % labelEvery == 0 {
                bars +=
                    "<text x=\"\(x + 2)\" y=\"\(height - bottom + 16)\" font-size=\"11\" fill=\"#667\">"
                    + "\(bucket.low)</text>"
            }
        }
        let axis =
            "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" "
            + "stroke=\"#99a\"/><text x=\"\(left - 6)\" y=\"\(top + 4)\" font-size=\"11\" fill=\"#667\" "
            + "text-anchor=\"end\">\(grouped(Int(most)))</text><text x=\"\(left - 6)\" y=\"\(height - bottom + 4)\" "
            + "font-size=\"11\" fill=\"#667\" text-anchor=\"end\">0</text>"
            + (buckets.last.map { $0.high == $0.low && (buckets.count - 1) % labelEvery == 0 } ?? true
                ? ""
                : "<text x=\"\(width - right)\" y=\"\(height - bottom + 16)\" font-size=\"11\" fill=\"#667\" "
                    + "text-anchor=\"end\">\(buckets.last?.high ?? 0)</text>")
            + "<text x=\"\((width - left) / 2 + left)\" y=\"\(height - 6)\" font-size=\"12\" fill=\"#445\" "
            + "text-anchor=\"middle\">points (\(score))</text>"
        let pattern =
            "<defs><pattern id=\"partial\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
            + "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#dbe6fb\"/>"
            + "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#2f6fde\" stroke-width=\"2\"/></pattern></defs>"
        let total = (histogram.complete ? "" : "at least ") + grouped(histogram.total)
        let note =
            histogram.complete
            ? ""
            : "<p class=\"muted\" id=\"approximate\">Approximate: the count stopped after "
                + "\(grouped(histogram.examined)) index entries, so hatched bars marked ≥ are lower bounds.</p>"
        return """
            <h2>Distribution of \(score)</h2><p class="muted">\(total) matching contacts, \
            \(buckets.count) bucket\(buckets.count == 1 ? "" : "s") of \(buckets[0].high - buckets[0].low + 1) points \
            — the page and cursor do not change it.</p>\
            <svg id="score-histogram" viewBox="0 0 \(Int(width)) \(Int(height))" width="100%" role="img" \
            aria-label="Distribution of \(score)" xmlns="http://www.w3.org/2000/svg">\(pattern)\(axis)\(bars)</svg>\(note)
            """
    }
}

extension Routes {
    /// `GET /ui/contacts?min_points&max_points&group&tag&segment&campaign&trigger&sort&limit&cursor` (L3): the
    /// parameters of `GET /v1/contacts`, parsed by the same ``listQuery(_:)``; a bad one is shown on the page (400).
    static func contactsPage(_ request: Request, source: UISource) async throws -> Response {
        let parameters = request.uri.queryParameters
        var form: [String: String] = [:]
        for name in ["min_points", "max_points", "group", "tag", "segment", "campaign", "trigger", "sort", "limit"] {
            if let value = parameters[Substring(name)] { form[name] = String(value) }
        }
        var query = ContactListQuery(limit: ContactsPage.defaultLimit)
        var limit: Int?
        do {
            query = try Self.listQuery(parameters)
            if let text = parameters["limit"], !text.isEmpty {
                limit = query.limit
            } else {
                query.limit = ContactsPage.defaultLimit
            }
            let page = try await source.list(query)
            var whole = query
            whole.cursor = nil
            let histogram = try await source.histogram(whole)
            return ContactsPage.render(form: form, query: query, limit: limit, page: page, histogram: histogram)
        } catch let error as APIError {
            return ContactsPage.render(form: form, query: query, limit: limit, page: nil, histogram: nil, error: error)
        } catch let error as EngineError where error.kind == .invalid {
            return ContactsPage.render(
                form: form, query: query, limit: limit, page: nil, histogram: nil, error: APIError(error))
        }
    }
}
