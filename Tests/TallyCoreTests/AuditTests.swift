import TallyCore
import Testing

/// The audit trail (A1, A2, A6), rules versions (A3), rebuilds in the replay (A4), manual changes (M1, M3),
/// imports (M2) and `trigger_existing` (T4), folded in memory by ``LogReplay``.
@Suite("Audit, rules versions, manual changes and trigger_existing in the fold")
struct AuditTests {
    static let at: Int64 = 1_767_225_600_000

    /// A log built event by event, numbered from 1.
    struct Log {
        var events: [LoggedEvent] = []

        mutating func add(_ event: Event) {
            events.append(LoggedEvent(seq: UInt64(events.count + 1), event: event))
        }

        mutating func publish(_ yaml: String, at: Int64 = AuditTests.at) {
            add(Event(type: .rulesPublished, contact: "", at: at, reason: "test", text: yaml))
        }

        mutating func change(_ contact: String, _ op: PointsOperation, _ value: Int64, group: String? = nil) {
            add(
                Event(
                    type: .pointsChange, contact: contact, at: AuditTests.at, group: group, reason: "fix", value: value,
                    operation: op))
        }

        func replay() throws -> LogReplay { try LogReplay.replay(events) }
    }

    static let allTypesRules = """
        groups: [product]
        actions:
          - { id: download, type: asset.download, delta: 3, repeatable: true }
          - { id: sent, type: email.send, delta: 1, repeatable: true }
          - { id: opened, type: email.open, delta: 2, repeatable: true }
          - { id: opened-once, type: email.open, delta: 10 }
          - { id: demo, type: form.submit, delta: 25, items: [demo], group: product }
          - { id: unsubscribe, type: form.submit, delta: -40, items: [unsubscribe] }
          - { id: landing, type: page.hit, delta: 4, repeatable: true }
          - { id: pricing, type: url.hit, delta: 7, repeatable: true, url: "https://x.com/pricing*", page_hits: 2 }
          - { id: docs, type: url.hit, delta: 5, url: "https://x.com/docs/*", time_spent: 1m }
        triggers:
          - { id: mql, min_points: 50, events: [{ id: tag, type: tags.modify, add: [mql] }] }
        """

    @Test("A2 property: for 100,000 random events over 1,000 contacts, the audit deltas sum to every score")
    func explainSumsEqualScores() throws {
        var random = SplitMix64(seed: 42)
        var log = Log()
        log.publish(Self.allTypesRules)
        let items = ["a", "demo", "unsubscribe", "n"]
        let urls = ["https://x.com/pricing", "https://x.com/pricing/team", "https://x.com/docs/a", "https://x.com/"]
        for index in 0..<100_000 {
            let contact = "c-\(random.int(in: 0...999))"
            let at = Self.at + Int64(index) * 1_000
            switch random.int(in: 0...9) {
            case 0: log.add(Event(type: .assetDownload, contact: contact, at: at, item: random.pick(items)))
            case 1: log.add(Event(type: .emailSend, contact: contact, at: at, item: "n"))
            case 2: log.add(Event(type: .emailOpen, contact: contact, at: at, item: "n"))
            case 3: log.add(Event(type: .formSubmit, contact: contact, at: at, item: random.pick(items)))
            case 4: log.add(Event(type: .pageHit, contact: contact, at: at, item: "lp"))
            case 5, 6:
                log.add(
                    Event(
                        type: .urlHit, contact: contact, at: at, url: random.pick(urls),
                        session: "s\(random.int(in: 0...2))"))
            case 7:
                let op = random.pick(PointsOperation.allCases)
                let value = op == .divide ? Int64(random.int(in: 1...3)) : Int64(random.int(in: -50...50))
                log.change(contact, op, value, group: random.chance(1, in: 4) ? "product" : nil)
            case 8:
                log.add(
                    Event(
                        type: .pointsSet, contact: contact, at: at, reason: "leads.csv",
                        value: Int64(random.int(in: 0...99))))
            default:
                if random.chance(1, in: 200) {
                    log.publish(
                        Self.allTypesRules.replacingOccurrences(of: "delta: 3", with: "delta: \(random.int(in: 1...9))")
                    )
                } else {
                    log.add(Event(type: .emailOpen, contact: contact, at: at, item: "m"))
                }
            }
        }
        let replay = try log.replay()
        #expect(replay.projection.contacts.count == 1_000)
        var kinds: Set<String> = []
        for (contact, state) in replay.projection.contacts {
            let explanation = Explanation(entries: replay.audit[contact] ?? [])
            #expect(explanation.points == state.points, "\(contact)")
            #expect(explanation.groups == state.groups.filter { $0.value != 0 || explanation.groups[$0.key] != nil })
            #expect(explanation.byAction.reduce(0) { $0 &+ $1.points } == state.points)
            for entry in explanation.entries { kinds.insert(entry.action) }
        }
        #expect(
            kinds.isSuperset(of: ["download", "sent", "opened", "demo", "landing", "pricing", "(manual)", "(import)"]))
    }

    @Test("M1 each operation's audit entry holds the real delta: minus 5 is -5, set 21 from 16 is +5")
    func manualChanges() throws {
        var log = Log()
        log.publish("groups: [product]\nactions: []")
        log.change("c", .plus, 16)
        log.change("c", .minus, 5)
        log.change("c", .times, 3)
        log.change("c", .divide, -4)  // 33 / -4 = -8 (toward zero)
        log.change("c", .set, 21)
        log.change("c", .set, 21)
        log.change("c", .plus, 7, group: "product")
        log.change("c", .times, Int64.max)  // saturates
        let replay = try log.replay()
        let entries = replay.audit["c"] ?? []
        #expect(entries.map(\.delta) == [16, -5, 22, -41, 29, 0, 7, Int64.max - 21])
        #expect(entries.map(\.scoreAfter) == [16, 11, 33, -8, 21, 21, 7, Int64.max])
        #expect(entries.allSatisfy { $0.kind == .manual && $0.action == "(manual)" && $0.version == 1 })
        #expect(entries[1].reason.contains("manual minus 5: fix (score was 16, now 11)"))
        #expect(entries[6].group == "product")
        let state = try #require(replay.projection.contacts["c"])
        #expect(state.points == Int64.max)
        #expect(state.groups == ["product": 7])
        #expect(Explanation(entries: entries).points == state.points)
        let setFrom16 = try Log.with { log in
            log.change("d", .plus, 16)
            log.change("d", .set, 21)
        }
        #expect(setFrom16.audit["d"]?.last?.delta == 5)
    }

    @Test("M2 an imported score overwrites, keeps the email, and explains itself")
    func importedScore() throws {
        let replay = try Log.with { log in
            log.change("c", .plus, 12)
            log.add(
                Event(type: .pointsSet, contact: "c", at: Self.at, email: "c@x.com", reason: "leads.csv", value: 40))
        }
        let entry = try #require(replay.audit["c"]?.last)
        #expect(entry.delta == 28)
        #expect(entry.kind == .imported)
        #expect(entry.reason == "imported from leads.csv: score set to 40, was 12")
        #expect(replay.projection.contacts["c"]?.email == "c@x.com")
    }

    @Test("M3 triggers are evaluated after manual changes and imports")
    func triggersAfterManualChanges() throws {
        let replay = try Log.with(
            rules: "triggers: [{ id: t, min_points: 10, events: [{ id: tag, type: tags.modify, add: [hot] }] }]"
        ) {
            log in
            log.change("c", .plus, 5)
            log.add(Event(type: .pointsSet, contact: "d", at: Self.at, reason: "f.csv", value: 10))
            log.change("c", .times, 2)
        }
        #expect(replay.projection.contacts["c"]?.tags == ["hot"])
        #expect(replay.projection.contacts["d"]?.tags == ["hot"])
    }

    @Test("A3 a version published mid-log scores later events; earlier awards stay; the audit names both versions")
    func publishMidLog() throws {
        var log = Log()
        log.publish("actions: [{ id: open, type: email.open, delta: 5, repeatable: true }]")
        log.add(Event(type: .emailOpen, contact: "c", at: Self.at, item: "n"))
        log.publish("actions: [{ id: open, type: email.open, delta: 7, repeatable: true }]")
        log.add(Event(type: .emailOpen, contact: "c", at: Self.at, item: "n"))
        let replay = try log.replay()
        #expect(replay.projection.contacts["c"]?.points == 12)
        #expect(replay.audit["c"]?.map(\.version) == [1, 2])
        #expect(replay.audit["c"]?.map(\.delta) == [5, 7])
        #expect(replay.rules.scorer.version == 2)
    }

    @Test("A4 a rebuild event folds everything before it again under the version it names")
    func rebuildInTheReplay() throws {
        var log = Log()
        log.publish("actions: [{ id: open, type: email.open, delta: 5, repeatable: true }]")
        log.add(Event(type: .emailOpen, contact: "c", at: Self.at, item: "n"))
        log.publish("actions: [{ id: open, type: email.open, delta: 7, repeatable: true }]")
        log.add(Event(type: .emailOpen, contact: "c", at: Self.at, item: "n"))
        log.add(Event(type: .rebuild, contact: "", at: Self.at, value: 2))
        log.add(Event(type: .emailOpen, contact: "c", at: Self.at, item: "n"))
        let replay = try log.replay()
        #expect(replay.projection.contacts["c"]?.points == 21)
        #expect(replay.audit["c"]?.map(\.version) == [2, 2, 2])
    }

    /// The audit trail of contact `c` opening a newsletter `count` times, an hour apart from `at`, 5 points each.
    static func hourlyOpens(_ count: Int) throws -> [AuditEntry] {
        let replay = try Log.with(rules: "actions: [{ id: open, type: email.open, delta: 5, repeatable: true }]") {
            log in
            for hour in 0..<count {
                log.add(Event(type: .emailOpen, contact: "c", at: Self.at + Int64(hour) * 3_600_000, item: "n"))
            }
        }
        return replay.audit["c"] ?? []
    }

    @Test("A6 the score as of a time sums the entries whose events happened by then")
    func scoreAsOf() throws {
        let entries = try Self.hourlyOpens(4)
        #expect(Explanation(entries: entries, asOf: Self.at - 1).points == 0)
        #expect(Explanation(entries: entries, asOf: Self.at).points == 5)
        #expect(Explanation(entries: entries, asOf: Self.at + 2 * 3_600_000 + 1).points == 15)
        #expect(Explanation(entries: entries).points == 20)
    }

    @Test("A2 an explanation with a limit keeps the newest entries in log order and sums every entry")
    func explanationLimit() throws {
        let entries = try Self.hourlyOpens(1000)
        let all = Explanation(entries: entries)
        for limit in [0, 1, 7, 999, 1000, 5000] {
            let limited = Explanation(entries: entries, limit: limit)
            #expect(limited.entries == Array(entries.suffix(limit)), "limit \(limit)")
            #expect(limited.total == 1000)
            #expect(limited.points == all.points && limited.points == 5000)
            #expect(limited.byAction.map(\.points) == [5000])
        }
        let early = Explanation(entries: entries, asOf: Self.at + 9 * 3_600_000, limit: 3)
        #expect(early.total == 10)
        #expect(early.points == 50)
        #expect(early.entries == Array(entries[7..<10]))
    }

    @Test("T4 a version that first publishes trigger_existing fires it for every contact already at the threshold")
    func triggerExisting() throws {
        var log = Log()
        log.publish("actions: [{ id: open, type: email.open, delta: 5, repeatable: true }]")
        for contact in 0..<10 {
            for _ in 0...(contact % 4) {
                log.add(Event(type: .emailOpen, contact: "c-\(contact)", at: Self.at, item: "n"))
            }
        }
        let trigger = """
            actions: [{ id: open, type: email.open, delta: 5, repeatable: true }]
            triggers: [{ id: t, min_points: 15, trigger_existing: true, events: [{ id: tag, type: tags.modify, add: [hot] }] }]
            """
        log.publish(trigger)
        log.publish(trigger)  // republishing does not fire again
        let replay = try log.replay()
        for contact in 0..<10 {
            let state = try #require(replay.projection.contacts["c-\(contact)"])
            #expect(state.tags == (state.points >= 15 ? ["hot"] : []), "c-\(contact) with \(state.points)")
        }
        #expect(replay.projection.contacts.values.filter { $0.tags == ["hot"] }.count == 4)
    }
}

extension AuditTests.Log {
    /// A log with `rules` published first, then what `build` adds, replayed.
    static func with(
        rules: String = "groups: [product]\nactions: []", _ build: (inout Self) -> Void
    ) throws
        -> LogReplay
    {
        var log = Self()
        log.publish(rules)
        build(&log)
        return try log.replay()
    }
}
