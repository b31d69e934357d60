import TallyAPI
import TallyCore
import TallyEngine
import Testing

@testable import TallyCluster

/// L2 across partitions (K4): the cluster's feed pages, put together from partitions' answers of any length, some
/// cut short, hold every change once in position order.
@Suite struct ChangeFeedMergeTests {
    @Test func pagesHoldEveryChangeOnceInOrder() {  // L2, K4
        for seed in UInt64(1)...200 {
            var random = SplitMix64(seed: seed)
            let partitions = random.int(in: 1...5)
            // Each stream sequence belongs to one partition, and may hold several changes (indices).
            var all: [[ChangeDocument]] = Array(repeating: [], count: partitions)
            for seq in UInt64(1)..<UInt64(random.int(in: 1...120)) where random.int(in: 0...2) > 0 {
                let partition = random.int(in: 0...(partitions - 1))
                for index in 0..<UInt32(random.int(in: 1...3)) {
                    all[partition].append(
                        ChangeDocument(
                            seq: seq, index: index, contact: "c-\(partition)", score: "main", delta: 1, points: 1,
                            kind: "action", action: "a", at: "2026-12-01T00:00:00.000Z"))
                }
            }
            let limit = random.int(in: 1...40)
            var position = ChangePosition(seq: 0)
            var read: [ChangeDocument] = []
            while true {
                let asked = random.int(in: 1...limit)
                let answers = all.map { changes -> (changes: [ChangeDocument], cut: Bool) in
                    var part = Array(changes.filter { ClusterNode.precedes(position, $0.position) }.prefix(asked))
                    var cut = part.count == asked
                    if part.count > 1, random.int(in: 0...3) == 0 {  // cut to fit one message
                        part = Array(part.prefix(part.count / 2))
                        cut = true
                    }
                    return (part, cut)
                }
                let page = ClusterNode.page(of: answers, limit: limit)
                #expect(page.count <= limit)
                guard let last = page.last else { break }
                read += page
                position = last.position
            }
            let expected = all.flatMap { $0 }.sorted { ClusterNode.precedes($0.position, $1.position) }
            #expect(read == expected, "seed \(seed)")
        }
    }
}
