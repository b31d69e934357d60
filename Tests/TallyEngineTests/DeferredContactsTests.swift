import Testing

@testable import TallyCore
@testable import TallyEngine

/// A5 for a rebuild's deferred contact records: while a flush is written on the pipeline's writer thread, the batches
/// folded meanwhile must find the states it writes (the store may not hold them yet). The batching property test
/// folds through such flushes, but whether the writer has committed when the next batch reads is a race; these
/// cases fix the order.
@Suite struct DeferredContactsTests {
    static let session = SessionKey(contact: "c-2", session: "s-1")

    /// A table holding three contacts and an open hit, c-1 changed by three batches, the others by one.
    static func table() -> DeferredContacts {
        var table = DeferredContacts()
        for points: Int64 in 1...3 { table.update(ByteString("c-1"), ContactState(points: points), loadedFrom: nil) }
        table.update(ByteString("c-2"), ContactState(points: 20), loadedFrom: nil)
        table.update(ByteString("c-3"), ContactState(points: 30), loadedFrom: ContactState(points: 7))
        table.update(session, OpenHit(at: 5, url: "https://example.com/a"))
        return table
    }

    @Test("A5: a flush's states and open hits stay visible until it has committed")
    func flushVisibleUntilCommitted() {
        var table = Self.table()
        let flush = table.takeFlush(keeping: 1)
        #expect(flush.entries.count == 3)
        #expect(table.entries.count == 1, "the most used state is kept")
        #expect(table.entries[ByteString("c-1")]?.uses == 0, "kept as written")
        #expect(table.state(ByteString("c-1"))?.points == 3)
        #expect(table.state(ByteString("c-2"))?.points == 20, "from the flush being written")
        #expect(table.state(ByteString("c-3"))?.points == 30)
        #expect(table.hit(Self.session)?.at == 5)
        table.flushCommitted()
        #expect(table.state(ByteString("c-1"))?.points == 3)
        #expect(table.state(ByteString("c-2")) == nil, "the store holds it now")
        #expect(table.hit(Self.session) == nil)
    }

    @Test("A5: a batch folded during the flush supersedes it, diffed against what the flush writes")
    func batchDuringFlush() {
        var table = Self.table()
        _ = table.takeFlush(keeping: 0)
        // A batch folded meanwhile loaded c-2 from the flush (its `previous`) and changed it.
        table.update(ByteString("c-2"), ContactState(points: 21), loadedFrom: ContactState(points: 20))
        #expect(table.state(ByteString("c-2"))?.points == 21)
        #expect(table.entries[ByteString("c-2")]?.stored?.points == 20)
        table.flushCommitted()
        #expect(table.state(ByteString("c-2"))?.points == 21)
        #expect(table.state(ByteString("c-3")) == nil)
    }
}
