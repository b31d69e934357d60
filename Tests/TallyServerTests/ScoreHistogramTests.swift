import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import TallyAPI
import TallyEngine
import TallyServer
import Testing

/// L3: the score histogram of the contacts page, counted from the `scores` index with a bounded scan, and the page's
/// handling of the list parameters on the admin router.
@Suite("Router: the contacts page and its score histogram (L3)")
struct ScoreHistogramTests {
    static let rules = """
        groups: [product]
        actions:
          - { id: download, type: asset.download, delta: 10, repeatable: true }
          - { id: demo, type: form.submit, delta: 25, group: product, repeatable: true }
        triggers:
          - id: mql
            min_points: 30
            events:
              - { id: tag, type: tags.modify, add: [mql] }

        """

    /// 30 contacts h-00…h-29 with 10, 20, 30, 40 or 50 points (six each); h-00…h-04 also in group product at 25
    /// or 50 points.
    static var events: String {
        var lines: [String] = []
        for index in 0..<30 {
            for _ in 0...(index % 5) {
                lines.append(#"{"type":"asset.download","contact":"h-\#(String(format: "%02d", index))","item":"g"}"#)
            }
        }
        for index in 0..<5 {
            for _ in 0...(index % 2) {
                lines.append(#"{"type":"form.submit","contact":"h-0\#(index)","item":"d"}"#)
            }
        }
        return lines.joined(separator: "\n")
    }

    static func counts(_ histogram: ScoreHistogram) -> [Int64: Int] {
        Dictionary(histogram.buckets.filter { $0.count > 0 }.map { ($0.low, $0.count) }, uniquingKeysWith: +)
    }

    @Test("L3 the histogram counts the matching contacts exactly within its budget, in buckets of a round width")
    func exact() async throws {
        try await TestEngine.with(rules: Self.rules) { test in
            try await test.admin { client in
                let receipt = try await client.append(Self.events)
                _ = try await client.get("/v1/contacts/h-00?after=\(receipt.lastSeq ?? 0)")
            }
            let engine = test.engine
            let all = try await engine.scoreHistogram(ContactListQuery())
            #expect(all.complete)
            #expect(all.total == 30)
            #expect(all.buckets.first?.low == 10 && all.buckets.last?.high == 50)
            #expect(all.buckets.allSatisfy { $0.high - $0.low + 1 == 5 || $0.high == 50 }, "width 5")
            #expect(Self.counts(all) == [10: 6, 20: 6, 30: 6, 40: 6, 50: 6])
            // Buckets are adjacent and cover the bounds.
            for (one, next) in zip(all.buckets, all.buckets.dropFirst()) { #expect(one.high + 1 == next.low) }

            let mql = try await engine.scoreHistogram(ContactListQuery(tag: "mql"))
            #expect(Self.counts(mql) == [30: 6, 40: 6, 50: 6])
            let bounded = try await engine.scoreHistogram(ContactListQuery(minPoints: 20, maxPoints: 40))
            #expect(Self.counts(bounded) == [20: 6, 30: 6, 40: 6])
            #expect(bounded.buckets.first?.low == 20 && bounded.buckets.last?.high == 40)
            let product = try await engine.scoreHistogram(ContactListQuery(group: "product"))
            #expect(product.group == "product")
            #expect(Self.counts(product) == [25: 3, 50: 2])
            let nobody = try await engine.scoreHistogram(ContactListQuery(minPoints: 1000))
            #expect(nobody.buckets.isEmpty && nobody.complete)
            let inverted = try await engine.scoreHistogram(ContactListQuery(minPoints: 10, maxPoints: 5))
            #expect(inverted.buckets.isEmpty)
        }
    }

    @Test("L3 the histogram's buckets stay adjacent and cover the scores at the ends of Int64")
    func extremes() async throws {
        try await TestEngine.with(rules: Self.rules) { test in
            let seq = try await test.admin { client in
                var last: UInt64 = 0
                for (contact, value) in [("low", Int64.min + 1), ("high", Int64.max), ("zero", 0)] {
                    let response = try await client.send(
                        .post, "/v1/contacts/\(contact)/points", json: #"{"op":"set","value":\#(value)}"#)
                    #expect(response.status == .accepted, "\(String(buffer: response.body))")
                    last = try decode(EventReceipt.self, response).lastSeq ?? last
                }
                _ = try await client.get("/v1/contacts/zero?after=\(last)")
                return last
            }
            #expect(seq > 0)
            let histogram = try await test.engine.scoreHistogram(ContactListQuery())
            #expect(histogram.complete && histogram.total == 3)
            #expect(histogram.buckets.count <= ScoreHistogram.maximumBuckets + 1)
            #expect(histogram.buckets.first?.low == Int64.min + 1 && histogram.buckets.last?.high == Int64.max)
            for (one, next) in zip(histogram.buckets, histogram.buckets.dropFirst()) {
                #expect(one.high < next.low && one.high &+ 1 == next.low)
            }
        }
    }

    @Test("L3 past its budget the histogram stops, and its unfinished buckets are lower bounds")
    func bounded() async throws {
        try await TestEngine.with(rules: Self.rules) { test in
            try await test.admin { client in
                let receipt = try await client.append(Self.events)
                _ = try await client.get("/v1/contacts/h-00?after=\(receipt.lastSeq ?? 0)")
            }
            let exact = try await test.engine.scoreHistogram(ContactListQuery())
            let partial = try await test.engine.scoreHistogram(ContactListQuery(), budget: 12)
            #expect(!partial.complete)
            #expect(partial.examined <= 12)
            #expect(partial.total < 30)
            #expect(partial.buckets.map(\.low) == exact.buckets.map(\.low))
            for (one, truth) in zip(partial.buckets, exact.buckets) {
                #expect(one.count <= truth.count)
                if one.complete { #expect(one.count == truth.count) }
            }
            // The budget is shared: every non-empty bucket got some of it.
            #expect(partial.buckets.filter { $0.low % 10 == 0 }.allSatisfy { $0.count > 0 })
            // With a membership filter whose members exceed the budget, the count falls back to the score index:
            // still a lower bound per bucket, marked incomplete.
            let members = try await test.engine.scoreHistogram(ContactListQuery(tag: "mql"))
            #expect(members.complete && members.total == 18)
            let fallback = try await test.engine.scoreHistogram(ContactListQuery(tag: "mql"), budget: 10)
            #expect(!fallback.complete)
            #expect(fallback.total < 18)
            for bucket in fallback.buckets {
                // Six mql contacts at each of 30, 40 and 50 points.
                let truth = 6 * [Int64(30), 40, 50].filter { (bucket.low...bucket.high).contains($0) }.count
                #expect(bucket.count <= truth, "\(bucket)")
                if bucket.complete { #expect(bucket.count == truth, "\(bucket)") }
            }
        }
    }

    @Test("L3 GET /ui/contacts takes the list parameters, pages with a next link and shows a bad one as a 400 page")
    func page() async throws {
        try await TestEngine.with(rules: Self.rules) { test in
            try await test.admin { client in
                let receipt = try await client.append(Self.events)
                _ = try await client.get("/v1/contacts/h-00?after=\(receipt.lastSeq ?? 0)")
                let first = try await client.get("/ui/contacts?tag=mql&min_points=40&limit=5&sort=id")
                #expect(first.status == .ok)
                #expect(first.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                let html = String(buffer: first.body)
                let rows = html.components(separatedBy: "<tr class=\"contact\">").count - 1
                #expect(rows == 5)
                #expect(html.contains("<a href=\"/ui/contacts/h-03\">h-03</a>"), "the first 40-point mql contact")
                #expect(!html.contains("/ui/contacts/h-02\""), "30 points is filtered out")
                #expect(html.contains("<svg id=\"score-histogram\""))
                let start = try #require(html.range(of: "<a id=\"next\" rel=\"next\" href=\""))
                let end = try #require(html[start.upperBound...].firstIndex(of: "\""))
                let next = String(html[start.upperBound..<end]).replacingOccurrences(of: "&amp;", with: "&")
                #expect(next.contains("min_points=40") && next.contains("tag=mql") && next.contains("limit=5"))
                let second = String(buffer: try await client.get(next).body)
                #expect(second.components(separatedBy: "<tr class=\"contact\">").count - 1 == 5)
                #expect(second.contains("id=\"first\""))
                // 12 contacts at 40 or more with the tag: pages of 5, 5 and 2, the last without a next link.
                let start2 = try #require(second.range(of: "<a id=\"next\" rel=\"next\" href=\""))
                let end2 = try #require(second[start2.upperBound...].firstIndex(of: "\""))
                let third = String(
                    buffer: try await client.get(
                        String(second[start2.upperBound..<end2]).replacingOccurrences(of: "&amp;", with: "&")
                    ).body)
                #expect(third.components(separatedBy: "<tr class=\"contact\">").count - 1 == 2)
                #expect(!third.contains("id=\"next\""))
                #expect(third.contains("End of the list."))
                let bad = try await client.get("/ui/contacts?sort=sideways&tag=%3Cx%3E")
                #expect(bad.status == .badRequest)
                let badHTML = String(buffer: bad.body)
                #expect(badHTML.contains("\"sort\" must be") || badHTML.contains("&quot;sort&quot; must be"))
                #expect(badHTML.contains("value=\"&lt;x&gt;\""), "the form keeps what was typed, escaped")
                let cursor = try await client.get("/ui/contacts?cursor=nonsense")
                #expect(cursor.status == .badRequest)
            }
        }
    }
}
