import Foundation
import TallyCore
import Testing

@testable import TallyStore

@Suite("Event log")
struct EventLogTests {
    static func event(_ n: Int, id: String? = nil, contact: String = "c-1") -> Event {
        Event(type: .assetDownload, contact: contact, at: 1_700_000_000_000 + Int64(n), id: id, item: "item-\(n)")
    }

    @Test("events read back in order with the sequence numbers they were given")
    func appendAndReadRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
        let first = (1...3).map { Self.event($0) }
        let second = [
            Event(type: .urlHit, contact: "c-2", at: -5, id: "x", url: "https://e.com/ü?q=1", session: "s")
        ]
        let receipts = try log.append([first, second])
        #expect(
            receipts == [
                AppendReceipt(accepted: 3, duplicates: 0, firstSeq: 1, lastSeq: 3),
                AppendReceipt(accepted: 1, duplicates: 0, firstSeq: 4, lastSeq: 4),
            ])
        #expect(try log.head() == 4)
        let read = try log.read(from: 1, limit: 100)
        #expect(read.map(\.seq) == [1, 2, 3, 4])
        #expect(read.map(\.event) == first + second)
        #expect(try log.read(from: 3, limit: 1).map(\.seq) == [3])
    }

    @Test("S6 an event whose id is already in the log is acknowledged as a duplicate and not appended")
    func idempotentRetry() throws {
        let directory = try TemporaryDirectory()
        let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
        _ = try log.append([[Self.event(1, id: "a"), Self.event(2, id: "b")]])
        let retry = try log.append([[Self.event(1, id: "a"), Self.event(3, id: "c"), Self.event(4, id: "c")]])
        #expect(
            retry == [
                AppendReceipt(
                    accepted: 1, duplicates: 2, duplicatesByType: [.assetDownload: 2], firstSeq: 1, lastSeq: 3)
            ])
        #expect(try log.count() == 3)
        #expect(try log.seq(forID: "c") == 3)
        #expect(try log.seq(forID: "missing") == nil)
    }

    @Test("the log survives closing and reopening")
    func reopen() throws {
        let directory = try TemporaryDirectory()
        do {
            let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
            _ = try log.append([[Self.event(1, id: "a")]])
        }
        let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
        #expect(try log.head() == 1)
        #expect(
            try log.append([[Self.event(1, id: "a")]]) == [
                AppendReceipt(duplicates: 1, duplicatesByType: [.assetDownload: 1], firstSeq: 1, lastSeq: 1)
            ])
    }

    @Test("a tiny map grows by itself and no event is lost or duplicated")
    func mapGrowth() throws {
        let directory = try TemporaryDirectory()
        let log = try EventLog(directory: directory.path, mapSize: 64 << 10)
        let initial = log.environment.mapSize
        var expected: [Event] = []
        for batch in 0..<20 {
            let events = (0..<1000).map { Self.event(batch * 1000 + $0, id: "id-\(batch)-\($0)", contact: "c-\($0)") }
            expected += events
            let receipt = try log.append([events])
            #expect(receipt.first?.accepted == 1000)
        }
        #expect(log.environment.mapSize > initial)
        #expect(try log.count() == 20_000)
        var read: [Event] = []
        try log.forEach(from: 1) { logged in
            read.append(logged.event)
            return true
        }
        #expect(read == expected)
    }

    @Test("the binary encoding round-trips every field, and truncated records are rejected")
    func codecRoundTrip() throws {
        let events = [
            Event(type: .pageHit, contact: "c", at: 0, item: "p"),
            Event(
                type: .urlHit, contact: String(repeating: "é", count: 64), at: Int64.min / 2, id: "id",
                url: "https://x.com/" + String(repeating: "a", count: 4000), session: "s-1"),
            Event(type: .emailOpen, contact: "c\u{0}d", at: 1, id: nil, item: "i", session: "s"),
        ]
        for event in events {
            let bytes = EventCodec.encode(event)
            #expect(try EventCodec.decode(bytes) == event)
            for cut in [1, 5, bytes.count - 1] {
                #expect(throws: CorruptRecordError.self) { try EventCodec.decode(Array(bytes.prefix(cut))) }
            }
        }
        let state = ContactState(points: -7, groups: ["b": 2, "a": Int64.max], awarded: ["x", "y"])
        #expect(try ContactCodec.encode(state).withUnsafeBytes { try ContactCodec.decode($0) } == state)
    }

    @Test(
        "an environment in another on-disk format is refused with a clear message, not misread; format 1 (T7: delivery outcomes outside the log) is refused"
    )
    func unsupportedFormat() throws {
        let directory = try TemporaryDirectory()
        do {
            let log = try EventLog(directory: directory.path, mapSize: 1 << 20)
            _ = try log.append([[Self.event(1)]])
            let meta = try log.environment.database("meta")
            try log.environment.write { txn in _ = try txn.put(meta, Array("format".utf8), [1]) }
        }
        #expect {
            _ = try EventLog(directory: directory.path, mapSize: 1 << 20)
        } throws: { error in
            "\(error)".contains("holds on-disk format 1, and this version of Tally reads format 2")
        }
        let projections = try TemporaryDirectory()
        do {
            let store = try ProjectionStore(directory: projections.path, mapSize: 1 << 20)
            let meta = try store.environment.database("meta")
            try store.environment.write { txn in _ = try txn.put(meta, Array("format".utf8), [1]) }
        }
        #expect {
            _ = try ProjectionStore(directory: projections.path, mapSize: 1 << 20)
        } throws: { error in
            "\(error)".contains(
                "holds on-disk format 1, and this version of Tally reads format \(ProjectionStore.format)")
        }
        let current = try TemporaryDirectory()
        _ = try ProjectionStore(directory: current.path, mapSize: 1 << 20)
        let reopened = try ProjectionStore(directory: current.path, mapSize: 1 << 20)
        #expect(try reopened.read { try $0.checkpoint() } == 0, "a store in the current format opens again")
    }

    @Test("events of every type, with the extended fields of administrative events, round-trip through the codec")
    func administrativeEventsRoundTrip() throws {
        let events = [
            Event(type: .pointsChange, contact: "c", at: 5, group: "g", reason: "why", value: -7, operation: .divide),
            Event(type: .pointsSet, contact: "c", at: 6, email: "a@b.c", reason: "f.csv", value: Int64.min),
            Event(type: .rulesPublished, contact: "", at: 7, reason: "file x", text: "actions: []\n"),
            Event(type: .rebuild, contact: "", at: 8, value: 3),
            Event(type: .urlHit, contact: "c", at: 9, id: "i", url: "https://x.com/", session: "s"),
        ]
        for event in events { #expect(try EventCodec.decode(EventCodec.encode(event)) == event) }
        // Behaviour events keep the original single presence byte.
        #expect(EventCodec.encode(events[4])[10] & 0x80 == 0)
    }
}
