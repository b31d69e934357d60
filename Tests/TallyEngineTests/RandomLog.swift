import TallyCore

/// A seeded generator of random logs for the batching property test: every event type the fold knows, with ids,
/// items, sessions and URLs drawn from small pools so that contacts, ledgers and sessions are revisited, and with
/// canonically equivalent but byte-different spellings in every pool (SPEC §1).
///
/// To cover a new event type (merges, clock events, delivery outcomes…), add one ``Kind`` to ``kinds``: a weight
/// and a function that makes the event from the generator.
struct RandomLog {
    /// One kind of event and how often it is drawn, relative to the other kinds' weights (thousandths of the
    /// log, roughly).
    struct Kind: Sendable {
        var name: String
        var weight: Int
        var make: @Sendable (inout RandomLog) -> Event
    }

    /// 2026-01-01T00:00:00Z, epoch milliseconds.
    static let start: Int64 = 1_767_225_600_000
    static let minute: Int64 = 60_000

    /// "café" composed (U+00E9) and decomposed (e + U+0301): equal for `String`, different bytes.
    static let composed = "caf\u{E9}"
    static let decomposed = "cafe\u{301}"

    var random: SplitMix64
    /// The event time, moving forward with occasional steps back (events are folded in log order, not time order),
    /// forward on the whole so that clock events reach the awards' due times.
    var clock = RandomLog.start
    let contacts: [String]
    let items = ["guide", "demo", "n1", "n2", RandomLog.composed, RandomLog.decomposed, "\(RandomLog.composed)-x"]
    let sessions = ["s1", "s2", "s-\(RandomLog.composed)", "s-\(RandomLog.decomposed)"]
    let urls = [
        "https://x.com/pricing", "https://x.com/pricing/plans?utm=1", "https://x.com/blog/a", "https://x.com/blog/",
        "https://x.com/\(RandomLog.composed)", "https://x.com/\(RandomLog.decomposed)", "https://x.com/about#top",
        "https://x.com/a?q=1",
    ]
    var kinds: [Kind] = RandomLog.standardKinds
    /// How many `rules.published` events were made.
    var publications = 0

    /// `events`: the log's planned length, which sets how often rules are published: about `events / 20,000`
    /// times (8 to 50), since each publication with a `trigger_existing` trigger visits every contact.
    init(seed: UInt64, contacts: Int, events: Int) {
        random = SplitMix64(seed: seed)
        let publications = min(max(events / 20_000, 8), 50)
        let others = kinds.filter { $0.name != "rules.published" }.reduce(0) { $0 + $1.weight }
        for index in kinds.indices where kinds[index].name == "rules.published" {
            kinds[index].weight = max(1, others * publications / max(events, 1))
        }
        // Two spellings of "café" and of a longer id, then plain ids.
        let special = [
            RandomLog.composed, RandomLog.decomposed, "\(RandomLog.composed)-\(RandomLog.decomposed)",
            "\(RandomLog.decomposed)-\(RandomLog.composed)",
            // Equivalent and adjacent in byte order (78 65 cc 81, 78 c3 a9): a pass that resumes after the first
            // must not skip the second.
            "xe\u{301}", "x\u{E9}",
        ]
        self.contacts = special + (0..<max(contacts, 1)).map { "c-\($0)" }
    }

    /// The next event; the first is always a publication, so that most of the log is scored.
    mutating func next() -> Event {
        clock +=
            random.chance(1, in: 20) ? -random.int64(in: 0...(10 * Self.minute)) : random.int64(in: 0...Self.minute)
        if publications == 0 { return Self.publication(&self) }
        let total = kinds.reduce(0) { $0 + $1.weight }
        var draw = random.int(in: 0...(total - 1))
        for kind in kinds {
            if draw < kind.weight { return kind.make(&self) }
            draw -= kind.weight
        }
        return kinds[kinds.count - 1].make(&self)
    }

    /// A contact id, skewed toward the first few so that hot contacts recur (as they do in real streams).
    mutating func contact() -> String {
        random.chance(1, in: 2) ? contacts[random.int(in: 0...min(7, contacts.count - 1))] : random.pick(contacts)
    }

    /// An event id half of the time: some repeat (duplicates the log skips, S6), some are equivalent spellings.
    mutating func eventID() -> String? {
        guard random.chance(1, in: 2) else { return nil }
        let suffix = random.pick(["", RandomLog.composed, RandomLog.decomposed])
        return "e\(random.int(in: 0...2_000))\(suffix)"
    }

    static let standardKinds: [Kind] = [
        Kind(name: "behaviour", weight: 60_000) { log in
            let type = log.random.pick([EventType.assetDownload, .emailSend, .emailOpen, .formSubmit, .pageHit])
            return Event(
                type: type, contact: log.contact(), at: log.clock, id: log.eventID(), item: log.random.pick(log.items))
        },
        Kind(name: "url.hit", weight: 30_000) { log in
            Event(
                type: .urlHit, contact: log.contact(), at: log.clock, id: log.eventID(), url: log.random.pick(log.urls),
                session: log.random.chance(3, in: 4) ? log.random.pick(log.sessions) : nil)
        },
        Kind(name: "contact.update", weight: 3_000) { log in
            Event(
                type: .contactUpdate, contact: log.contact(), at: log.clock,
                email: log.random.chance(3, in: 4) ? "u\(log.random.int(in: 0...9))@example.com" : nil,
                ownerEmail: log.random.chance(1, in: 2) ? "owner@example.com" : nil, fields: log.fieldUpdates())
        },
        Kind(name: "points.change", weight: 4_000) { log in
            Event(
                type: .pointsChange, contact: log.contact(), at: log.clock,
                group: log.random.chance(1, in: 3) ? log.random.pick(["g1", "g2"]) : nil,
                reason: log.random.chance(1, in: 2) ? "fair" : nil, value: log.random.int64(in: -3...40),
                operation: log.random.pick(PointsOperation.allCases))
        },
        Kind(name: "points.set", weight: 2_000) { log in
            Event(
                type: .pointsSet, contact: log.contact(), at: log.clock,
                email: log.random.chance(1, in: 2) ? "imported@example.com" : nil,
                group: log.random.chance(1, in: 3) ? "g1" : nil, reason: "leads.csv",
                value: log.random.int64(in: -10...100))
        },
        Kind(name: "rules.published", weight: 1_000) { log in RandomLog.publication(&log) },
        // D1: clock events near the event time, some behind the fold's now (which change nothing).
        Kind(name: "clock", weight: 2_000) { log in
            Event(
                type: .clock, contact: "",
                at: log.clock + log.random.int64(in: (-20 * RandomLog.minute)...(10 * RandomLog.minute)))
        },
        // I2 I3: merges between random contacts, some from the ingest socket (applied only while `from` is
        // anonymous), some into itself or around a cycle (the fold leaves those alone).
        Kind(name: "contact.merge", weight: 300) { log in
            Event.merge(
                from: log.contact(), into: log.contact(), at: log.clock, id: log.eventID(),
                viaIngest: log.random.chance(1, in: 2))
        },
        // Delivery outcomes (T7) for keys the random rules may fire (t0…t3 with their side-effect events), and for
        // keys no trigger fires (orphans): the outbox is folded from them.
        Kind(name: "outbox outcome", weight: 3_000) { log in
            let contact = log.contact()
            let key = "\(contact)/t\(log.random.int(in: 0...4))/\(log.random.pick(["crm", "mail", "alert", "tag"]))"
            let type = log.random.pick([
                EventType.outboxDelivered, .outboxAttemptFailed, .outboxAttemptFailed, .outboxParked, .outboxRetried,
            ])
            return Event(
                type: type, contact: contact, at: log.clock, item: key,
                reason: type == .outboxAttemptFailed || type == .outboxParked ? "webhook answered 503" : nil,
                value: type == .outboxAttemptFailed ? log.clock + log.random.int64(in: 1...60) * 1000 : nil)
        },
    ]

    /// F1: fields set to values on both sides of the random rules' bounds, or removed (nil), two thirds of the time.
    mutating func fieldUpdates() -> [FieldUpdate] {
        guard random.chance(2, in: 3) else { return [] }
        let values: [String: [FieldValue?]] = [
            "size": [.number(10), .number(499.5), .number(500), .number(501), .string("500"), nil],
            "title": [.string("CTO"), .string("Chief \(Self.composed)"), .string("Chief \(Self.decomposed)"), nil],
            "zip": [.string("01234"), .number(1234), nil],
        ]
        let names = Set((0..<random.int(in: 1...3)).map { _ in random.pick(["size", "title", "zip"]) }).sorted()
        return names.map { FieldUpdate(name: $0, value: random.pick(values[$0] ?? [nil])) }
    }

    /// A `rules.published` event with a random, valid rule set.
    static func publication(_ log: inout RandomLog) -> Event {
        log.publications += 1
        return Event(
            type: .rulesPublished, contact: "", at: log.clock, reason: "api", text: log.rulesText())
    }

    /// Random rules: item lists with equivalent spellings, groups, publish windows, url.hit patterns with every
    /// condition, and triggers (some with `trigger_existing`) with every kind of trigger event.
    mutating func rulesText() -> String {
        var lines = ["groups: [g1, g2]", "actions:"]
        let windows = [
            "", ", publish_up: 2026-01-01T02:00:00Z", ", publish_down: 2026-01-02T00:00:00Z",
            ", publish_up: 2026-01-01T01:00:00Z, publish_down: 2026-01-01T12:00:00Z", ", published: false",
        ]
        let patterns = [
            "https://x.com/pricing*", "https://x.com/blog/*", "https://x.com/\(Self.composed)",
            "https://x.com/\(Self.decomposed)", "https://x.com/a?*", "*", "https://X.com/Pricing",
        ]
        for index in 0..<random.int(in: 1...10) {
            let type = random.pick(["asset.download", "email.send", "email.open", "form.submit", "page.hit", "url.hit"])
            var fields = "id: a\(index), type: \(type), delta: \(random.int(in: -5...20))"
            if random.chance(1, in: 2) {
                fields += ", repeatable: true"
                // C1, C2: caps on event time (the log's events are out of time order too).
                if random.chance(1, in: 3) { fields += ", max_awards: \(random.int(in: 1...4))" }
                if random.chance(1, in: 3) {
                    fields +=
                        ", max_per: { count: \(random.int(in: 1...3)), within: \(random.pick(["1m", "10m", "2h"])) }"
                }
            }
            if random.chance(1, in: 3) { fields += ", group: \(random.pick(["g1", "g2"]))" }
            fields += random.chance(1, in: 4) ? random.pick(windows) : ""
            // D2, D3: awards that expire or decay at the clock events, due within minutes to hours of the award.
            if random.chance(1, in: 2) {
                fields += random.pick([
                    ", expires_after: \(random.pick(["5m", "30m", "2h"]))", ", expires_after: 1h",
                    ", decay: [{ after: 10m, keep: 60 }, { after: 1h, keep: 25 }, { after: 3h, keep: 0 }]",
                    ", decay: [{ after: 20m, keep: 50 }]",
                    ", decay: [{ after: 1m, keep: 99 }, { after: 2h, keep: 33 }]",
                ])
            }
            if type == "url.hit" {
                fields += ", url: \"\(random.pick(patterns))\""
                if random.chance(1, in: 3) { fields += ", page_hits: \(random.int(in: 1...4))" }
                if random.chance(1, in: 4) { fields += ", returns_within: \(random.pick(["5m", "1h"]))" }
                if random.chance(1, in: 4) { fields += ", returns_after: \(random.pick(["1m", "10m"]))" }
                if random.chance(1, in: 3) { fields += ", time_spent: \(random.pick(["30s", "2m"]))" }
            } else if random.chance(1, in: 2) {
                let chosen = (0..<random.int(in: 1...3)).map { _ in "\"\(random.pick(items))\"" }
                fields += ", items: [\(Set(chosen).sorted().joined(separator: ", "))]"
            }
            lines.append("  - { \(fields) }")
        }
        // F2: fit scores on the fields above, every operator.
        let conditions = [
            "field: size, gte: 500", "field: size, lte: 499.5", "field: size, equals: 500",
            "field: size, in: [10, \"500\"]",
            "field: title, contains: Chief", "field: title, equals: \"Chief \(Self.composed)\"",
            "field: zip, exists: true",
        ]
        for index in 0..<random.int(in: 0...3) {
            var fields =
                "id: f\(index), type: contact.field, delta: \(random.int(in: -10...50)), \(random.pick(conditions))"
            if random.chance(1, in: 3) { fields += ", group: \(random.pick(["g1", "g2"]))" }
            fields += random.chance(1, in: 4) ? random.pick(windows) : ""
            lines.append("  - { \(fields) }")
        }
        lines.append("triggers:")
        let events = [
            "{ id: tag, type: tags.modify, add: [hot], remove: [cold] }",
            "{ id: cold, type: tags.modify, add: [cold, \"\(Self.composed)\"] }",
            "{ id: seg, type: segments.modify, add: [s1], remove: [s2] }",
            "{ id: camp, type: campaigns.modify, add: [nurture] }",
            "{ id: crm, type: integration.push, integration: crm }",
            "{ id: mail, type: email.send, email: welcome }",
            "{ id: alert, type: email.send_to_user, email: alert, to_owner: true, to: [sales@example.com] }",
        ]
        for index in 0..<random.int(in: 0...4) {
            let fallsBelow = random.chance(1, in: 3)  // T8
            var fields =
                fallsBelow
                ? "id: t\(index), falls_below: \(random.int(in: -5...40))"
                : "id: t\(index), min_points: \(random.int(in: -5...60))"
            if random.chance(1, in: 3) { fields += ", group: \(random.pick(["g1", "g2"]))" }
            if !fallsBelow, random.chance(1, in: 2) { fields += ", trigger_existing: true" }
            if random.chance(1, in: 2) { fields += ", rearm: true" }  // T9
            fields += random.chance(1, in: 5) ? random.pick(windows) : ""
            let chosen = Set((0..<random.int(in: 1...3)).map { _ in random.int(in: 0...(events.count - 1)) })
            lines.append("  - { \(fields), events: [\(chosen.sorted().map { events[$0] }.joined(separator: ", "))] }")
        }
        if lines.last == "triggers:" { lines.removeLast() }
        return lines.joined(separator: "\n") + "\n"
    }
}
