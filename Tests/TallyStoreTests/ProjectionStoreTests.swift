import TallyCore
import Testing

@testable import TallyStore

@Suite("Projection store")
struct ProjectionStoreTests {
    @Test("A5 contact states and the checkpoint commit together, and an aborted update changes neither")
    func stateAndCheckpointAreAtomic() throws {
        let directory = try TemporaryDirectory()
        let store = try ProjectionStore(directory: directory.path, mapSize: 1 << 20)
        #expect(try store.checkpoint() == 0)
        try store.update { txn in
            try txn.setContact("c-1", ContactState(points: 5))
            try txn.setCheckpoint(10)
        }
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try store.update { txn in
                try txn.setContact("c-1", ContactState(points: 99))
                try txn.setCheckpoint(20)
                throw Abort()
            }
        }
        #expect(try store.checkpoint() == 10)
        #expect(try store.contact("c-1") == ContactState(points: 5))
        #expect(try store.contact("c-2") == nil)
    }
}
