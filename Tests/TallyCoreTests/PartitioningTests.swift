import Testing

@testable import TallyCore

/// The partition function of a cluster and a parallel rebuild (K1): fixed for ever, by the id's bytes.
@Suite struct PartitioningTests {
    @Test func theFunctionIsPinned() throws {  // K1: a change here would move contacts between partitions
        #expect(Partitioning.fnv1a([]) == 0xCBF2_9CE4_8422_2325)
        #expect(Partitioning.fnv1a(Array("a".utf8)) == 0xAF63_DC4C_8601_EC8C)
        #expect(Partitioning.fnv1a(Array("foobar".utf8)) == 0x8594_4171_F739_67E8)
        let sixteen = try #require(Partitioning(count: 16))
        let pinned = ["c-1", "c-2", "c-42", "alice@example.com", "visitor:7f3a", ""].map { sixteen.partition(of: $0) }
        #expect(pinned == [3, 13, 5, 11, 13, 13])  // as the paper's C function gives, over the same FNV-1a keys
        #expect(try #require(Partitioning(count: 1)).partition(of: "anything") == 0)
    }

    @Test func idsArePartitionedByTheirBytes() throws {  // SPEC §1
        let partitions = try #require(Partitioning(count: 1024))
        let composed = "caf\u{E9}"  // é as one scalar
        let decomposed = "cafe\u{301}"  // e and a combining accent: equal as Swift Strings, not as bytes
        #expect(composed == decomposed)
        #expect(partitions.partition(of: composed) == partitions.partition(of: Array(composed.utf8)))
        #expect(partitions.partition(of: composed) != partitions.partition(of: decomposed))
    }

    @Test func contactsSpreadEvenlyAndFewMoveWhenPartitionsAreAdded() throws {
        let ids = (0..<60_000).map { "contact-\($0)" }
        let eight = try #require(Partitioning(count: 8))
        let nine = try #require(Partitioning(count: 9))
        var sizes = [Int](repeating: 0, count: 8)
        var moved = 0
        for id in ids {
            let before = eight.partition(of: id)
            sizes[before] += 1
            let after = nine.partition(of: id)
            if after != before {
                moved += 1
                #expect(after == 8)  // a contact only ever moves to the new partition
            }
        }
        #expect(sizes.allSatisfy { abs($0 - 7_500) < 400 })
        #expect(abs(moved - 60_000 / 9) < 500)
    }

    @Test func countsOutsideTheLimitsAreRefused() {
        #expect(Partitioning(count: 0) == nil)
        #expect(Partitioning(count: Partitioning.maximum + 1) == nil)
        #expect(Partitioning(count: Partitioning.maximum) != nil)
    }
}
