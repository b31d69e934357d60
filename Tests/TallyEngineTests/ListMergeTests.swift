import Foundation
import Testing

@testable import TallyCore
@testable import TallyEngine

/// L1 across a cluster's partitions (K4): pages that each partition gives — cut short at random, as a scan budget
/// or a message size cuts them — merged page by page list every contact once, in the order a single node lists
/// them (scores, ties in contact bytes, descending for `-points`).
@Suite struct ListMergeTests {
    struct Item {
        var contact: String
        var points: Int64
    }

    @Test(
        "L1 K4 merged partition pages list every contact once, in the single node's order",
        arguments: [
            ContactListQuery.Sort.pointsDescending, .pointsAscending, .id,
        ])
    func mergedPagesFollowTheListOrder(sort: ContactListQuery.Sort) throws {
        var random = SplitMix64(seed: 16 + UInt64(sort.rawValue.count))
        // Few scores, so that ties decide much of the order; ids with bytes above ASCII.
        let items = (0..<300).map { n in
            Item(contact: ["c-\(n)", "é-\(n)", "Z\(n)"][n % 3], points: Int64(random.int(in: -3...3)))
        }
        func key(_ item: Item) -> [UInt8] {
            sort == .id ? Array(item.contact.utf8) : [UInt8(item.points + 100)] + Array(item.contact.utf8)
        }
        func ordered(_ items: [Item]) -> [Item] {
            items.sorted {
                sort == .pointsDescending
                    ? key($1).lexicographicallyPrecedes(key($0)) : key($0).lexicographicallyPrecedes(key($1))
            }
        }
        let partitions = (0..<3).map { p in ordered(items.enumerated().filter { $0.offset % 3 == p }.map(\.element)) }
        let expected = ordered(items).map(\.contact)
        let score: (Item) -> Int64? = { sort == .id ? nil : $0.points }
        for limit in [1, 7, 50, 1_000] {
            var query = ContactListQuery(sort: sort, limit: limit)
            var listed: [String] = []
            var pages = 0
            while true {
                // Each partition's page after the cursor: at most `limit`, cut short at random.
                var after: (score: Int64?, contact: String)?
                if let cursor = query.cursor {
                    let parsed = try ContactListCursorProbe.position(cursor, query)
                    after = parsed
                }
                let partitionPages = partitions.map { partition -> (items: [Item], next: String?) in
                    let rest = partition.drop { item in
                        guard let after else { return false }
                        let position = Item(contact: after.contact, points: after.score ?? 0)
                        return sort == .pointsDescending
                            ? !key(item).lexicographicallyPrecedes(key(position))
                            : !key(position).lexicographicallyPrecedes(key(item))
                    }
                    let take = min(limit, random.int(in: 1...limit + 2))
                    let page = Array(rest.prefix(take))
                    guard rest.count > page.count, let last = page.last else { return (page, nil) }
                    return (page, TallyEngine.listCursor(query, score: score(last), contact: last.contact))
                }
                let merged = try TallyEngine.mergeListPages(partitionPages, query: query) {
                    (score($0), $0.contact)
                }
                #expect(merged.items.count <= limit)
                listed += merged.items.map(\.contact)
                pages += 1
                guard let next = merged.next, pages < 10_000 else { break }
                query.cursor = next
            }
            #expect(listed == expected, "sort \(sort.rawValue), limit \(limit)")
        }
    }
}

/// Reads back a cursor's position, as the store does when it resumes after it.
enum ContactListCursorProbe {
    static func position(_ text: String, _ query: ContactListQuery) throws -> (score: Int64?, contact: String) {
        let cursor = try ContactListCursor(text: text, query: query)
        return (cursor.score, cursor.contact)
    }
}
