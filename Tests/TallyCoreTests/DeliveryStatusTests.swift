import TallyCore
import Testing

/// T7: delivery outcomes are events in the log; the fold derives each side effect's delivery from them alone.
@Suite("Delivery outcomes folded from the log")
struct DeliveryStatusTests {
    static let rules = """
        actions:
          - { id: open, type: email.open, delta: 10, repeatable: true }
        triggers:
          - id: mql
            min_points: 10
            events:
              - { id: crm, type: integration.push, integration: crm }
              - { id: tag, type: tags.modify, add: [mql] }
        """

    static func outcome(
        _ type: EventType, _ key: String, at: Int64, reason: String? = nil, due: Int64? = nil
    )
        -> Event
    {
        Event(type: type, contact: "c", at: at, item: key, reason: reason, value: due)
    }

    @Test("T7 attempts, due times, reasons and the delivery come from the events; delivered stays delivered")
    func fold() throws {
        var events = [
            Event(type: .rulesPublished, contact: "", at: 0, reason: "test", text: Self.rules),
            Event(type: .emailOpen, contact: "c", at: 1_000, item: "n"),
            Self.outcome(.outboxAttemptFailed, "c/mql/crm", at: 2_000, reason: "webhook: answered 503", due: 5_000),
        ]
        func replay() throws -> DeliveryStatus? {
            let logged = events.enumerated().map { LoggedEvent(seq: UInt64($0.offset + 1), event: $0.element) }
            return try LogReplay.replay(logged).deliveries["c/mql/crm"]
        }
        #expect(
            try replay()
                == DeliveryStatus(state: .pending, attempts: 1, dueAt: 5_000, lastError: "webhook: answered 503"))
        events.append(Self.outcome(.outboxParked, "c/mql/crm", at: 6_000, reason: "webhook: answered 400 (permanent)"))
        #expect(try replay()?.state == .failed)
        #expect(try replay()?.attempts == 2)
        events.append(Self.outcome(.outboxRetried, "c/mql/crm", at: 7_000))
        #expect(
            try replay()
                == DeliveryStatus(
                    state: .pending, attempts: 0, dueAt: 7_000, lastError: "webhook: answered 400 (permanent)"))
        events.append(Self.outcome(.outboxDelivered, "c/mql/crm", at: 8_000))
        let delivered = DeliveryStatus(state: .delivered, attempts: 1, dueAt: 7_000, deliveredAt: 8_000)
        #expect(try replay() == delivered)
        events.append(Self.outcome(.outboxRetried, "c/mql/crm", at: 9_000))
        events.append(Self.outcome(.outboxParked, "c/mql/crm", at: 9_500, reason: "late"))
        #expect(try replay() == delivered, "nothing changes a delivered entry")
        // An outcome for an effect the fold never fired makes an orphan; the tag is no outbox entry.
        events.append(Self.outcome(.outboxDelivered, "c/other/crm", at: 10_000))
        let logged = events.enumerated().map { LoggedEvent(seq: UInt64($0.offset + 1), event: $0.element) }
        let final = try LogReplay.replay(logged)
        #expect(Set(final.deliveries.keys) == ["c/mql/crm", "c/other/crm"])
        #expect(final.orphans == ["c/other/crm"])
        #expect(final.projection.contacts["c"]?.points == 10, "outcome events are no behaviour of the contact")
    }

    @Test("T7 the ingest decoder refuses outcome events as administrative")
    func notIngested() throws {
        for type in EventType.allCases where type.isDeliveryOutcome {
            #expect(!type.isBehaviour)
            #expect(EventType(name: type.name) == type)
            let line = #"{"type":"\#(type.name)","contact":"c","item":"c/mql/crm"}"#
            #expect(throws: EventDecodingError.self) {
                _ = try Array(line.utf8).withUnsafeBytes { raw in try EventDecoder(receivedAt: 0).decode(raw) }
            }
        }
    }

    @Test(
        "T7 an orphan (outcomes before the fold fires the key, as after a rebuild) stays delivered when fired; an undelivered one gives way"
    )
    func orphans() throws {
        let rules = Self.rules.replacingOccurrences(of: "min_points: 10", with: "min_points: 20")
        let events = [
            Event(type: .rulesPublished, contact: "", at: 0, reason: "test", text: rules),
            Self.outcome(.outboxDelivered, "c/mql/crm", at: 500),
            Self.outcome(.outboxParked, "d/mql/crm", at: 500, reason: "gone"),
            Event(type: .emailOpen, contact: "c", at: 1_000, item: "n"),
            Event(type: .emailOpen, contact: "c", at: 1_001, item: "n"),
            Event(type: .emailOpen, contact: "d", at: 1_000, item: "n"),
            Event(type: .emailOpen, contact: "d", at: 1_001, item: "n"),
        ]
        let logged = events.enumerated().map { LoggedEvent(seq: UInt64($0.offset + 1), event: $0.element) }
        let replay = try LogReplay.replay(logged)
        #expect(replay.deliveries["c/mql/crm"]?.state == .delivered, "a delivered key is never sent again")
        #expect(replay.deliveries["d/mql/crm"] == DeliveryStatus(), "fired after a parked orphan: queued afresh")
        #expect(replay.orphans == ["c/mql/crm"])
    }
}
