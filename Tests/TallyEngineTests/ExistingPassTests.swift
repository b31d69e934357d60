import Foundation
import TallyCore
import TallyEngine
import TallyStore
import Testing

/// T4 across batch boundaries: the `trigger_existing` pass is the contacts stored at the publication, however it
/// is cut into transactions and interleaved with the events after it.
@Suite("T4: the trigger_existing pass does not depend on how it is batched")
struct ExistingPassTests {
    /// 2026-01-01T00:00:00Z.
    static let start: Int64 = 1_767_225_600_000

    /// A delivery outcome (T7) names a contact before any event makes it: the contact's history starts before the
    /// publication, but it was not a contact then. Found by the batching property test (seed 15903699140885028506):
    /// a pass cut into transactions fired for it when it reached it; a pass run at once never did.
    @Test("T4 a contact first stored while the pass runs is not the pass's, even with earlier history")
    func contactFirstStoredDuringThePass() throws {
        let directory = try TemporaryDirectory()
        let log = try EventLog(directory: directory.path + "/log", mapSize: 1 << 30)
        // The trigger is published until the end of the first day: the pass judges contacts at the publication's
        // time, while "b-late"'s own event, a day later, cannot fire it.
        let rules = """
            triggers:
              - id: t
                min_points: 0
                trigger_existing: true
                publish_down: 2026-01-02T00:00:00Z
                events: [{ id: seg, type: segments.modify, add: [s1] }]

            """
        _ = try log.append([
            [
                Event(
                    type: .outboxAttemptFailed, contact: "b-late", at: Self.start, item: "b-late/t/crm",
                    reason: "webhook answered 503", value: Self.start + 60_000),
                Event(type: .contactUpdate, contact: "a-early", at: Self.start + 1, email: "a@example.com"),
                Event(type: .rulesPublished, contact: "", at: Self.start + 2, reason: "api", text: rules),
                Event(type: .contactUpdate, contact: "b-late", at: Self.start + 2 * 86_400_000, email: "b@example.com"),
            ]
        ])
        // At once: the pass visits every contact before the next event. One contact per transaction, in turn with
        // one event per batch: "b-late" is made while the pass is under way, before the pass reaches it.
        let atOnce = try fold(log, into: directory.path + "/at-once", limits: ProjectionFolder.Limits(), size: 10)
        let interleaved = try fold(
            log, into: directory.path + "/interleaved", limits: ProjectionFolder.Limits(existingBatchSize: 1), size: 1)
        for store in [atOnce, interleaved] {
            let contacts = Dictionary(uniqueKeysWithValues: try store.allContacts())
            #expect(contacts["a-early"]?.segments == ["s1"], "the pass fires for a contact stored at the publication")
            #expect(contacts["b-late"]?.segments == [], "a contact made after the publication is not the pass's")
        }
        let (one, other) = (try atOnce.rawTables(), try interleaved.rawTables())
        for (left, right) in zip(one, other) {
            #expect(left.records.map(\.key) == right.records.map(\.key), "\(left.name): keys")
            #expect(left.records.map(\.value) == right.records.map(\.value), "\(left.name): values")
        }
    }

    private func fold(
        _ log: EventLog, into path: String, limits: ProjectionFolder.Limits, size: Int
    ) throws
        -> ProjectionStore
    {
        let store = try ProjectionStore(directory: path, mapSize: 1 << 30)
        let folder = try ProjectionFolder(log: log, store: store, sessionTimeout: 30 * 60_000, limits: limits)
        while try folder.step(size: size) {}
        #expect(try store.read { try $0.anyPassPending() } == false)
        return store
    }
}
