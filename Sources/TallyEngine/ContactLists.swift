import Foundation
public import TallyCore
import TallyStore

/// A contact list query (L1): filters, an order, a page size and where the previous page ended.
public struct ContactListQuery: Sendable, Equatable, Codable {
    /// The order of a list.
    public enum Sort: String, Sendable, CaseIterable, Codable {
        case pointsDescending = "-points"
        case pointsAscending = "points"
        case id
    }

    public var minPoints: Int64?
    public var maxPoints: Int64?
    /// The point bounds and a points sort apply to this group's score; only contacts with a score in it are listed.
    public var group: String?
    public var tag: String?
    public var segment: String?
    public var campaign: String?
    /// A trigger any of whose events fired for the contact.
    public var trigger: String?
    public var sort: Sort
    public var limit: Int
    /// The `next` of the previous page.
    public var cursor: String?

    /// The most contacts one page may hold.
    public static let maximumLimit = 1_000

    public init(
        minPoints: Int64? = nil, maxPoints: Int64? = nil, group: String? = nil, tag: String? = nil,
        segment: String? = nil, campaign: String? = nil, trigger: String? = nil, sort: Sort = .pointsDescending,
        limit: Int = 100, cursor: String? = nil
    ) {
        self.minPoints = minPoints
        self.maxPoints = maxPoints
        self.group = group
        self.tag = tag
        self.segment = segment
        self.campaign = campaign
        self.trigger = trigger
        self.sort = sort
        self.limit = limit
        self.cursor = cursor
    }

    var memberships: [(ContactIndex.Membership, String)] {
        [(.tag, tag), (.segment, segment), (.campaign, campaign), (.trigger, trigger)].compactMap { kind, name in
            name.map { (kind, $0) }
        }
    }

    var range: ClosedRange<Int64>? {
        let low = minPoints ?? .min
        let high = maxPoints ?? .max
        return low <= high ? low...high : nil
    }
}

/// One page of a contact list: the contacts with their states, and the cursor of the next page (nil at the end).
public struct ContactListPage: Sendable {
    public var contacts: [(id: String, state: ContactState)]
    public var next: String?

    public init(contacts: [(id: String, state: ContactState)], next: String?) {
        self.contacts = contacts
        self.next = next
    }
}

/// Where a page ended, as the opaque `cursor` of the next request: the order and group it belongs to, and the last
/// position examined (a score and a contact id, or a contact id).
struct ContactListCursor: Equatable {
    var sort: ContactListQuery.Sort
    var group: String?
    var score: Int64?
    var contact: String

    /// base64url of `sort · group · score · contact`, in JSON: opaque to clients, and checked against the query.
    var text: String {
        let object: [String: Any] = [
            "s": sort.rawValue, "g": group ?? NSNull(), "p": score.map { String($0) } ?? NSNull(), "c": contact,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return data.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    init(sort: ContactListQuery.Sort, group: String?, score: Int64?, contact: String) {
        self.sort = sort
        self.group = group
        self.score = score
        self.contact = contact
    }

    init(text: String, query: ContactListQuery) throws(EngineError) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let sort = (object["s"] as? String).flatMap(ContactListQuery.Sort.init(rawValue:)),
            let contact = object["c"] as? String
        else { throw EngineError(.invalid, "\"cursor\" is not one this daemon gave", field: "cursor") }
        let group = object["g"] as? String
        let score = (object["p"] as? String).flatMap { Int64($0) }
        guard sort == query.sort, group == query.group, (score == nil) == (sort == .id) else {
            throw EngineError(
                .invalid, "\"cursor\" belongs to a list of another sort or group: keep the query, change the cursor",
                field: "cursor")
        }
        self.init(sort: sort, group: group, score: score, contact: contact)
    }
}

extension TallyEngine {
    /// The most index entries one page examines: a page with selective filters may come back short, with a cursor
    /// to go on from, rather than scan without bound.
    static let listScanBudget = 100_000

    /// L1: one page of the contacts matching `query`, from the list indexes (on the blocking pool). A page costs
    /// its length, plus the entries its filters skip (at most ``listScanBudget``).
    public func listContacts(_ query: ContactListQuery) async throws -> ContactListPage {
        try await Self.listContacts(query, in: projections, blocking: blocking)
    }

    /// L1 over one set of projections (a node's, or a cluster partition's), on `blocking`.
    public static func listContacts(
        _ query: ContactListQuery, in projections: LiveProjections, blocking: BlockingWork
    ) async throws -> ContactListPage {
        guard (1...ContactListQuery.maximumLimit).contains(query.limit) else {
            throw EngineError(.invalid, "\"limit\" must be 1–\(ContactListQuery.maximumLimit)", field: "limit")
        }
        let cursor = try query.cursor.map { text throws(EngineError) in try ContactListCursor(text: text, query: query)
        }
        return try await blocking.run {
            try projections.read { txn in try Self.page(query, after: cursor, in: txn) }
        }
    }

    /// The cursor of a list that goes on after the contact `contact` with score `score` (nil for the id order).
    public static func listCursor(_ query: ContactListQuery, score: Int64?, contact: String) -> String {
        ContactListCursor(sort: query.sort, group: query.group, score: score, contact: contact).text
    }

    /// L1 over a cluster's partitions: one page from the pages each partition gave for `query` (each in the list's
    /// order, with its own `next`). A partition whose page stopped early (its scan budget, or a page cut to fit a
    /// message) is known only as far as its `next`, so the page keeps what comes before the earliest such position,
    /// and goes on from there. `position` gives an item's score (nil in the id order) and contact.
    public static func mergeListPages<Item>(
        _ pages: [(items: [Item], next: String?)], query: ContactListQuery,
        position: (Item) -> (score: Int64?, contact: String)
    ) throws -> (items: [Item], next: String?) {
        // The index order: score (as its key bytes) then contact bytes, descending for `-points`.
        func key(_ score: Int64?, _ contact: String) -> [UInt8] {
            score.map { ContactIndex.scoreKey(query.group, $0, contact) } ?? Array(contact.utf8)
        }
        func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
            query.sort == .pointsDescending ? b.lexicographicallyPrecedes(a) : a.lexicographicallyPrecedes(b)
        }
        var known: (key: [UInt8], cursor: String)?  // the earliest position a partition's page stopped at
        for page in pages {
            guard let next = page.next else { continue }
            let cursor = try ContactListCursor(text: next, query: query)
            let stop = key(cursor.score, cursor.contact)
            if known.map({ precedes(stop, $0.key) }) ?? true { known = (stop, next) }
        }
        let items = pages.flatMap(\.items).map { item in
            let (score, contact) = position(item)
            return (item: item, key: key(score, contact), score: score, contact: contact)
        }.filter { entry in known.map { !precedes($0.key, entry.key) } ?? true }
            .sorted { precedes($0.key, $1.key) }
        let page = items.prefix(query.limit)
        if items.count > query.limit, let last = page.last {
            return (page.map(\.item), listCursor(query, score: last.score, contact: last.contact))
        }
        return (page.map(\.item), known?.cursor)
    }

    private static func page(
        _ query: ContactListQuery, after cursor: ContactListCursor?, in txn: ProjectionTransaction
    ) throws -> ContactListPage {
        var contacts: [(id: String, state: ContactState)] = []
        guard let range = query.range else { return ContactListPage(contacts: [], next: nil) }
        var examined = 0
        var last: ContactListCursor?
        var exhausted = true
        let memberships = query.memberships
        // Whether a candidate passes the filters the driving index does not: membership point reads, then the
        // state for the score bounds.
        func admit(_ contact: String, skipping driver: Int?) throws -> ContactState? {
            for (position, (kind, name)) in memberships.enumerated() where position != driver {
                guard try txn.isMember(kind, name, contact) else { return nil }
            }
            guard let state = try txn.contact(contact) else { return nil }
            if let group = query.group {
                guard let score = state.groups[group], range.contains(score) else { return nil }
            } else {
                guard range.contains(state.points) else { return nil }
            }
            return state
        }
        func visit(_ contact: String, score: Int64?, driver: Int?) throws -> Bool {
            examined += 1
            last = ContactListCursor(sort: query.sort, group: query.group, score: score, contact: contact)
            if let state = try admit(contact, skipping: driver) { contacts.append((contact, state)) }
            guard contacts.count < query.limit, examined < listScanBudget else {
                exhausted = false
                return false
            }
            return true
        }
        switch query.sort {
        case .pointsDescending, .pointsAscending:
            try txn.forEachByScore(
                group: query.group, range: range, descending: query.sort == .pointsDescending,
                after: cursor.flatMap { cursor in cursor.score.map { ($0, cursor.contact) } }
            ) { score, contact in try visit(contact, score: score, driver: nil) }
        case .id:
            if let (kind, name) = memberships.first {
                try txn.forEachMember(kind, name, after: cursor?.contact) { contact in
                    try visit(contact, score: nil, driver: 0)
                }
            } else {
                var after = cursor?.contact
                while exhausted {
                    let batch = try txn.contacts(after: after, limit: 1_000)
                    for (contact, _) in batch where try !visit(contact, score: nil, driver: nil) { break }
                    guard exhausted, batch.count == 1_000, let end = batch.last else { break }
                    after = end.0
                }
            }
        }
        return ContactListPage(contacts: contacts, next: exhausted ? nil : last?.text)
    }
}
