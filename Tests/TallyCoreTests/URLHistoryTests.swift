import TallyCore
import Testing

/// U2: a pattern a rules version introduces sees the contact's whole history, through ``LogReplay`` (the reference
/// the stored projections are checked against).
@Suite("U2 history for patterns a rules version introduces")
struct URLHistoryTests {
    static let t: Int64 = 1_767_225_600_000
    static let minute: Int64 = 60_000

    static func hit(_ url: String, _ at: Int64, contact: String = "c", session: String? = nil) -> Event {
        Event(type: .urlHit, contact: contact, at: at, url: url, session: session)
    }

    static func publish(_ yaml: String, _ at: Int64) -> Event {
        Event(type: .rulesPublished, contact: "", at: at, reason: "test", text: yaml)
    }

    static func replay(_ events: [Event]) throws -> LogReplay {
        try LogReplay.replay(events.enumerated().map { LoggedEvent(seq: UInt64($0.offset + 1), event: $0.element) })
    }

    static let docs = """
        actions: [{ id: docs, type: url.hit, delta: 7, repeatable: true, url: "https://x.com/docs/*", page_hits: 3 }]
        """

    @Test("U2 two docs hits, then a version with page_hits: 3 for the docs, then one more hit: 7 points")
    func issueExample() throws {
        let replay = try Self.replay([
            Self.publish("actions: []", Self.t - 1), Self.hit("https://x.com/docs/a", Self.t),
            Self.hit("https://x.com/docs/b?x=1", Self.t + Self.minute),
            Self.publish(Self.docs, Self.t + 2 * Self.minute),
            Self.hit("https://x.com/docs/a", Self.t + 3 * Self.minute),
        ])
        let state = try #require(replay.projection.contacts[ByteString("c")])
        #expect(state.points == 7)
        #expect(state.visits[URLPattern("https://x.com/docs/*").key]?.hits == 3)
    }

    @Test(
        "U2 the state after a publication equals a fold where the action existed from the start with publish_up at the publication"
    )
    func sameAsFromTheStart() throws {
        let pattern = "https://x.com/pricing*"
        let action = """
            actions: [{ id: p, type: url.hit, delta: 5, repeatable: true, url: "\(pattern)", page_hits: 2, \
            returns_within: 1h, time_spent: 1m, publish_up: 2026-01-01T00:30:00Z }]
            """
        let before = [
            Self.hit("https://x.com/pricing", Self.t, session: "s"),
            Self.hit("https://x.com/about", Self.t + 2 * Self.minute, session: "s"),
            Self.hit("https://X.com/Pricing/plans?utm=1", Self.t + 10 * Self.minute, session: "s2"),
            Self.hit("https://x.com/blog", Self.t + 20 * Self.minute, session: "s2"),
        ]
        let after = [
            Self.hit("https://x.com/pricing", Self.t + 40 * Self.minute, session: "s3"),
            Self.hit("https://x.com/blog", Self.t + 45 * Self.minute, session: "s3"),
        ]
        let published = try Self.replay(
            [Self.publish("actions: []", Self.t - 1)] + before + [Self.publish(action, Self.t + 30 * Self.minute)]
                + after)
        let fromTheStart = try Self.replay([Self.publish(action, Self.t - 1)] + before + after)
        let key = URLPattern(pattern).key
        let one = try #require(published.projection.contacts[ByteString("c")])
        let other = try #require(fromTheStart.projection.contacts[ByteString("c")])
        #expect(one.visits[key] == other.visits[key])
        #expect(
            one.visits[key]
                == VisitStats(
                    hits: 3, lastAt: Self.t + 40 * Self.minute,
                    dwell: 2 * Self.minute + 10 * Self.minute + 5 * Self.minute))
        #expect(one.points == other.points)
        #expect(one.points == 5)  // the hit at 0:40: 3 hits, returned after 30 min, 12 min spent before it
    }

    @Test("U2 the derivation: hits and dwell summed over matching URLs, the latest matching hit in log order")
    func derivation() {
        let rows: [(url: String, visit: URLVisit)] = [
            ("https://x.com/docs/a", URLVisit(hits: 2, lastSeq: 9, lastAt: 500, dwell: 30)),
            ("https://x.com/docs/b", URLVisit(hits: 1, lastSeq: 12, lastAt: 400, dwell: 5)),
            ("https://x.com/blog", URLVisit(hits: 4, lastSeq: 20, lastAt: 900, dwell: 1)),
        ]
        #expect(
            VisitStats.derived(for: URLPattern("https://x.com/docs/*"), from: rows)
                == VisitStats(hits: 3, lastAt: 400, dwell: 35))
        #expect(VisitStats.derived(for: URLPattern("https://y.com/*"), from: rows) == nil)
    }
}
