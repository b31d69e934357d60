import TallyCore
import Testing

/// D1–D4 in the fold: clock events, expiry, decay in steps, their order and the triggers they cross, through
/// ``LogReplay`` (the reference the stored projections are checked against).
@Suite("Aging D1–D4: expiry and decay at clock events")
struct AgingTests {
    static let t: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
    static let day: Int64 = 86_400_000

    /// Replays `events` after a publication of `yaml`, numbering them from 1.
    static func replay(_ yaml: String, _ events: [Event]) throws -> LogReplay {
        let publication = Event(type: .rulesPublished, contact: "", at: t - 1, reason: "test", text: yaml)
        let log = ([publication] + events).enumerated().map {
            LoggedEvent(seq: UInt64($0.offset + 1), event: $0.element)
        }
        return try LogReplay.replay(log)
    }

    static func download(_ at: Int64, contact: String = "c", item: String = "guide") -> Event {
        Event(type: .assetDownload, contact: contact, at: at, item: item)
    }

    static func clock(_ at: Int64) -> Event { Event(type: .clock, contact: "", at: at) }

    static func points(_ replay: LogReplay, _ contact: String = "c") -> Int64? {
        replay.projection.contacts[ByteString(contact)]?.points
    }

    static let expiring =
        "actions: [{ id: guide, type: asset.download, delta: 10, repeatable: true, expires_after: 30d }]"
    static let decaying = """
        actions: [{ id: guide, type: asset.download, delta: 25, decay: [{ after: 30d, keep: 50 }, { after: 90d, keep: 0 }] }]
        """

    @Test("D2 an award expires when a clock event reaches its at + expires_after, not before")
    func expiry() throws {
        let before = try Self.replay(Self.expiring, [Self.download(Self.t), Self.clock(Self.t + 30 * Self.day - 1)])
        #expect(Self.points(before) == 10)
        #expect(before.aging.count == 1)
        let after = try Self.replay(Self.expiring, [Self.download(Self.t), Self.clock(Self.t + 30 * Self.day)])
        #expect(Self.points(after) == 0)
        #expect(after.aging.count == 0)
        let entries = after.audit[ByteString("c")] ?? []
        #expect(entries.map(\.kind) == [.action, .expiry])
        #expect(entries.map(\.delta) == [10, -10])
        // The entry names the award it ages, is dated when it aged, and is caused by the clock event (seq 3).
        #expect(entries[1].at == Self.t + 30 * Self.day)
        #expect(entries[1].seq == 3)
        #expect(entries[1].action == "guide")
        #expect(entries[1].reason.contains("the award of 10 at 2026-01-01T00:00:00Z (event 2)"))
    }

    @Test("D2 a once-only ledger stays set after the award expired")
    func onceOnlyStaysSet() throws {
        let yaml = "actions: [{ id: guide, type: asset.download, delta: 10, expires_after: 1d }]"
        let replay = try Self.replay(
            yaml, [Self.download(Self.t), Self.clock(Self.t + 2 * Self.day), Self.download(Self.t + 3 * Self.day)])
        #expect(Self.points(replay) == 0)
        #expect(replay.projection.contacts[ByteString("c")]?.awarded == ["guide"])
    }

    @Test("D3 an award decays in two steps to keep% of its delta, rounded toward zero")
    func decayInTwoSteps() throws {
        let award = [Self.download(Self.t)]
        let first = try Self.replay(Self.decaying, award + [Self.clock(Self.t + 30 * Self.day)])
        #expect(Self.points(first) == 12)  // 50 % of 25 = 12.5 → 12
        let second = try Self.replay(
            Self.decaying, award + [Self.clock(Self.t + 30 * Self.day), Self.clock(Self.t + 90 * Self.day)])
        #expect(Self.points(second) == 0)
        #expect((second.audit[ByteString("c")] ?? []).map(\.kind) == [.action, .decay, .decay])
        #expect((second.audit[ByteString("c")] ?? []).map(\.delta) == [25, -13, -12])
        // One clock event past both steps applies both, in due order.
        let jump = try Self.replay(Self.decaying, award + [Self.clock(Self.t + 100 * Self.day)])
        #expect(Self.points(jump) == 0)
        #expect((jump.audit[ByteString("c")] ?? []).map(\.delta) == [25, -13, -12])
        #expect(
            (jump.audit[ByteString("c")] ?? []).map(\.at) == [Self.t, Self.t + 30 * Self.day, Self.t + 90 * Self.day])
    }

    @Test("D3 kept percentages round toward zero for negative deltas and never overflow")
    func keptRounding() {
        #expect(Aging.kept(50, of: 25) == 12)
        #expect(Aging.kept(50, of: -25) == -12)
        #expect(Aging.kept(33, of: 10) == 3)
        #expect(Aging.kept(100, of: .max) == .max)
        #expect(Aging.kept(99, of: .min) == -9_131_138_316_486_228_049)  // −9223372036854775808 · 0.99, toward zero
        #expect(Aging.kept(0, of: .min) == 0)
    }

    @Test("D1 a clock event earlier than now changes nothing")
    func clockBehindNow() throws {
        let replay = try Self.replay(
            Self.expiring,
            [Self.clock(Self.t + 10 * Self.day), Self.download(Self.t), Self.clock(Self.t + 5 * Self.day)])
        #expect(replay.now == Self.t + 10 * Self.day)
        #expect(Self.points(replay) == 10)
    }

    @Test("D4 awards due at one clock event apply by due time, then award sequence, across contacts")
    func dueOrder() throws {
        let yaml = "actions: [{ id: guide, type: asset.download, delta: 10, repeatable: true, expires_after: 1d }]"
        let replay = try Self.replay(
            yaml,
            [
                Self.download(Self.t + 1000, contact: "a"), Self.download(Self.t, contact: "b"),
                Self.download(Self.t + 1000, contact: "c"), Self.clock(Self.t + 2 * Self.day),
            ])
        let aged = ["a", "b", "c"].map { (replay.audit[ByteString($0)] ?? []).last?.at ?? 0 }
        #expect(aged == [Self.t + 1000 + Self.day, Self.t + Self.day, Self.t + 1000 + Self.day])
        #expect(["a", "b", "c"].allSatisfy { Self.points(replay, $0) == 0 })
    }

    @Test("D4 T8 a falls_below trigger fires on the decay that takes the score below it")
    func triggerOnDecay() throws {
        let yaml =
            Self.decaying + """

                triggers:
                  - { id: cooling, falls_below: 20, events: [{ id: tag, type: tags.modify, add: [cooling] }] }
                  - { id: hot, min_points: 20, events: [{ id: tag, type: tags.modify, add: [hot] }] }
                """
        let award = [Self.download(Self.t)]
        let early = try Self.replay(yaml, award + [Self.clock(Self.t + 29 * Self.day)])
        #expect(early.projection.contacts[ByteString("c")]?.tags == ["hot"])
        let decayed = try Self.replay(yaml, award + [Self.clock(Self.t + 30 * Self.day)])
        #expect(decayed.projection.contacts[ByteString("c")]?.tags == ["hot", "cooling"])
        #expect(decayed.projection.contacts[ByteString("c")]?.fired.contains("cooling/tag") == true)
    }

    @Test("D2 an award's aging follows the rules version that made it, and a group award ages its group")
    func scheduleOfTheAward() throws {
        let yaml = """
            groups: [product]
            actions: [{ id: guide, type: asset.download, delta: 10, group: product, expires_after: 1d }]
            """
        let republish = Event(
            type: .rulesPublished, contact: "", at: Self.t + 1, reason: "test",
            text: "groups: [product]\nactions: [{ id: guide, type: asset.download, delta: 10, group: product }]")
        let replay = try Self.replay(yaml, [Self.download(Self.t), republish, Self.clock(Self.t + Self.day)])
        #expect(replay.projection.contacts[ByteString("c")]?.groups["product"] == 0)
        #expect(Self.points(replay) == 0)
    }
}
