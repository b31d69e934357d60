import Foundation
import TallyCore
import Testing

@testable import TallyStore

@Suite("Audit table and the projections' format")
struct AuditTableTests {
    @Test("A2 one event's 300 awards are 300 audit entries in award order (a u8 index wrapped at 256, issue 15)")
    func threeHundredEntriesForOneEvent() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 24)
        let logged = LoggedEvent(seq: 7, event: Event(type: .emailOpen, contact: "c", at: 1_000, item: "n"))
        let awards = (0..<300).map {
            Award(action: "a\($0)", group: nil, delta: 1, scoreAfter: Int64($0) + 1, reason: "email.open of \"n\"")
        }
        var batch = TrailBatch()
        batch.awards(contact: "c", awards.map { AuditEntry($0, of: logged, version: 1) })
        try store.update { txn in try txn.append(batch) }
        let entries = try store.read { txn in try txn.audit(contact: "c") }
        #expect(entries.count == 300)
        #expect(entries.map(\.action) == (0..<300).map { "a\($0)" })
        #expect(entries.map(\.delta).reduce(0, +) == 300)
        #expect(entries.last?.scoreAfter == 300)
        #expect(AuditCodec.key(AuditPosition(seq: 7, index: 300)) == [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 1, 44])
    }

    @Test("T4 a trigger_existing pass resumes after its last contact by bytes: an equivalent next id is not skipped")
    func passResumesByBytes() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        // Adjacent in byte order ("xe\u{301}" is 78 65 cc 81, "x\u{E9}" 78 c3 a9) and equal for `String ==`.
        let ids = ["w", "xe\u{301}", "x\u{E9}", "y"]
        try store.update { txn in for id in ids { try txn.setContact(id, ContactState(points: 1)) } }
        let after = try store.read { txn in try txn.contacts(after: "xe\u{301}", limit: 10) }
        #expect(after.map { Array($0.0.utf8) } == [Array("x\u{E9}".utf8), Array("y".utf8)])
        let all = try store.read { txn in try txn.contacts(after: nil, limit: 10) }
        #expect(all.map { Array($0.0.utf8) } == ids.map { Array($0.utf8) }, "id order is byte order")
    }

    /// Each older format and what it lacks: 1 a u8 audit index, 2 contact records without caps or rearm records
    /// (C1 C2 T9), 3 without fields or fit-score awards (F1 F2), 4 without the aging index and the clock (D1–D4),
    /// 5 without the list indexes (L1 L2), 6 without URL facts (U2), 7 without histories (I1–I8), 8 with `history`
    /// and `audit` keyed by contact (issue 16).
    @Test(
        "projections in an older format are refused with what to do, not misread",
        arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt8])
    func olderFormatIsRefused(format: UInt8) throws {
        let directory = try TemporaryDirectory()
        do {
            let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
            let meta = try store.environment.database("meta")
            try store.environment.write { txn in _ = try txn.put(meta, Array("format".utf8), [format]) }
        }
        #expect {
            _ = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        } throws: { error in
            let text = "\(error)"
            return text.contains(
                "holds on-disk format \(format), and this version of Tally reads format \(ProjectionStore.format)")
                && text.contains("fold the log afresh")
        }
        #expect(ProjectionStore.format == 9)
    }
}
