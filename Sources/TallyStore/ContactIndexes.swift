public import TallyCore

/// The indexes behind contact lists (L1), maintained in the fold's transaction whenever a contact's record is
/// written, so that a page of a list costs its length, not the number of contacts:
///
/// ```
/// scores:   LEB128 length + score name (empty: the main score; else a group) · u64 BE score with its sign bit
///           flipped · contact id                                                        → empty
/// members:  u8 kind (t tag, s segment, c campaign, f trigger that fired) · LEB128 length + name · contact id → empty
/// ```
///
/// Every contact has a main-score key; a group key exists once the contact has a score in that group.
public enum ContactIndex {
    /// A membership a list can filter by.
    public enum Membership: UInt8, Sendable, CaseIterable {
        case tag = 0x74
        case segment = 0x73
        case campaign = 0x63
        /// A trigger any of whose events fired for the contact (T3, T9): the `trigger` filter.
        case trigger = 0x66
    }

    static func scorePrefix(_ group: String?) -> [UInt8] {
        var writer = ByteWriter()
        writer.string(group ?? "")
        return writer.bytes
    }

    /// The key of a contact's score in the score index: the group, the score as bytes that sort as the number does,
    /// then the contact's bytes — the order a list by points follows.
    public static func scoreKey(_ group: String?, _ score: Int64, _ contact: String) -> [UInt8] {
        var key = scorePrefix(group)
        key += sortableScore(score)
        key += Array(contact.utf8)
        return key
    }

    /// The score as 8 bytes that sort as the signed number does.
    static func sortableScore(_ score: Int64) -> [UInt8] {
        withUnsafeBytes(of: (UInt64(bitPattern: score) ^ (1 << 63)).bigEndian) { Array($0) }
    }

    static func score(from bytes: some Collection<UInt8>) -> Int64 {
        Int64(bitPattern: bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } ^ (1 << 63))
    }

    static func memberPrefix(_ kind: Membership, _ name: String) -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(kind.rawValue)
        writer.string(name)
        return writer.bytes
    }

    /// Whether two records of a contact have the same memberships of one kind: compared without building the
    /// sets of names, which most writes (a score change) leave alone.
    static func sameMemberships(_ kind: Membership, _ a: ContactState, _ b: ContactState) -> Bool {
        switch kind {
        case .tag: a.tags == b.tags
        case .segment: a.segments == b.segments
        case .campaign: a.campaigns == b.campaigns
        case .trigger: a.fired == b.fired
        }
    }

    /// The contact's memberships of one kind.
    static func names(_ kind: Membership, of state: ContactState) -> Set<String> {
        switch kind {
        case .tag: state.tags
        case .segment: state.segments
        case .campaign: state.campaigns
        case .trigger: Set(state.fired.map { String($0.prefix { $0 != "/" }) })
        }
    }
}

/// A contact's record and the list index keys that writing it adds and removes, encoded before the transaction
/// that writes them: a ``FoldPipeline`` encodes on its folding thread, and its writer thread only puts bytes.
public struct ContactRecordWrite: Sendable {
    let key: [UInt8]
    let value: [UInt8]
    /// Index keys, in the `scores` and `members` tables; the removed and the added are disjoint.
    var removedScores: [[UInt8]] = []
    var addedScores: [[UInt8]] = []
    var removedMembers: [[UInt8]] = []
    var addedMembers: [[UInt8]] = []

    /// The parts of a state the list indexes are made of, all a write needs of the `previous` record: the scores and
    /// the memberships. They share their storage with the state until it changes them; the rest — the once-only
    /// ledger, URL visits, caps, fields — is not shared, so the fold changes it in place instead of copying it.
    public static func indexed(_ state: ContactState) -> ContactState {
        ContactState(
            points: state.points, groups: state.groups, fired: state.fired, tags: state.tags, segments: state.segments,
            campaigns: state.campaigns)
    }

    /// The write that takes contact `id`'s record from `previous` (nil for a new contact) to `state`.
    public init(_ id: String, _ state: ContactState, previous: ContactState?) {
        key = Array(id.utf8)
        value = ContactCodec.encode(state)
        if previous?.points != state.points {
            if let previous { removedScores.append(ContactIndex.scoreKey(nil, previous.points, id)) }
            addedScores.append(ContactIndex.scoreKey(nil, state.points, id))
        }
        if previous?.groups != state.groups {
            for (group, score) in previous?.groups ?? [:] where state.groups[group] != score {
                removedScores.append(ContactIndex.scoreKey(group, score, id))
            }
            for (group, score) in state.groups where previous?.groups[group] != score {
                addedScores.append(ContactIndex.scoreKey(group, score, id))
            }
        }
        for kind in ContactIndex.Membership.allCases {
            if let previous, ContactIndex.sameMemberships(kind, previous, state) { continue }
            let new = ContactIndex.names(kind, of: state)
            let old = previous.map { ContactIndex.names(kind, of: $0) } ?? []
            guard old != new else { continue }
            for name in old.subtracting(new) { removedMembers.append(ContactIndex.memberPrefix(kind, name) + key) }
            for name in new.subtracting(old) { addedMembers.append(ContactIndex.memberPrefix(kind, name) + key) }
        }
    }
}

extension ProjectionTransaction {
    /// Writes a contact's record and brings the list indexes from `previous` (nil for a new contact) to `state`.
    public func setContact(_ id: String, _ state: ContactState, previous: ContactState?) throws {
        try setContact(ContactRecordWrite(id, state, previous: previous))
    }

    /// Writes an encoded contact record with its index changes.
    public func setContact(_ write: ContactRecordWrite) throws {
        try txn.put(store.contacts, write.key, write.value)
        for key in write.removedScores { _ = try txn.delete(store.scores, key) }
        for key in write.addedScores { try txn.put(store.scores, key, []) }
        for key in write.removedMembers { _ = try txn.delete(store.members, key) }
        for key in write.addedMembers { try txn.put(store.members, key, []) }
    }

    /// Visits the contacts by a score (main, or `group`'s) within `range`, ascending or descending, starting
    /// strictly after the position `after` (a score and a contact), until `body` returns false.
    public func forEachByScore(
        group: String?, range: ClosedRange<Int64>, descending: Bool, after: (score: Int64, contact: String)?,
        _ body: (Int64, String) throws -> Bool
    ) throws {
        let prefix = ContactIndex.scorePrefix(group)
        let resume = after.map { ContactIndex.scoreKey(group, $0.score, $0.contact) }
        let bound =
            descending
            ? ContactIndex.scoreKey(group, range.upperBound, "") : ContactIndex.scoreKey(group, range.lowerBound, "")
        let visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool = { key, _ in
            guard key.count >= prefix.count + 8, key.starts(with: prefix) else { return false }
            if let resume, key.elementsEqual(resume) { return true }
            let score = ContactIndex.score(from: key[prefix.count...])
            guard range.contains(score) else {
                // Ascending, past the upper bound: done. Descending, above the upper bound: keep going down.
                return descending && score > range.upperBound
            }
            let contact = String(decoding: UnsafeRawBufferPointer(rebasing: key[(prefix.count + 8)...]), as: UTF8.self)
            return try body(score, contact)
        }
        if descending {
            // From the resume position, or from the last key of the upper bound's score, backwards.
            let start = resume ?? (ContactIndex.scoreKey(group, range.upperBound, "") + [0xFF])
            try txn.scanBackward(store.scores, from: start, visit)
        } else {
            try txn.scan(store.scores, from: resume ?? bound, visit)
        }
    }

    /// Visits the contacts with a membership, in id order, strictly after `after`, until `body` returns false.
    public func forEachMember(
        _ kind: ContactIndex.Membership, _ name: String, after: String?, _ body: (String) throws -> Bool
    ) throws {
        let prefix = ContactIndex.memberPrefix(kind, name)
        let resume = after.map { prefix + Array($0.utf8) }
        try txn.scan(store.members, from: resume ?? prefix) { key, _ in
            guard key.starts(with: prefix) else { return false }
            if let resume, key.elementsEqual(resume) { return true }
            return try body(String(decoding: UnsafeRawBufferPointer(rebasing: key[prefix.count...]), as: UTF8.self))
        }
    }

    /// Whether the contact has the membership: one point read.
    public func isMember(_ kind: ContactIndex.Membership, _ name: String, _ contact: String) throws -> Bool {
        try txn.get(store.members, ContactIndex.memberPrefix(kind, name) + Array(contact.utf8)) != nil
    }
}

extension ProjectionStore {
    /// The list indexes and the trails checked against what they index (L1, issue 16): every `scores` and
    /// `members` record derived afresh from the `contacts` table, every trail from the chains of `history` and
    /// `audit`. Empty when they agree; at most `limit` differences. Part of `verify`, so that an index the fold
    /// kept wrongly is found even when a fresh fold would keep it wrongly too.
    public func indexDifferences(limit: Int = 100) throws -> [String] {
        try environment.read { txn in
            var expectedScores: [[UInt8]] = []
            var expectedMembers: [[UInt8]] = []
            try txn.scan(contacts) { key, value in
                let id = String(decoding: key, as: UTF8.self)
                let state = try ContactCodec.decode(value)
                expectedScores.append(ContactIndex.scoreKey(nil, state.points, id))
                for (group, score) in state.groups { expectedScores.append(ContactIndex.scoreKey(group, score, id)) }
                for kind in ContactIndex.Membership.allCases {
                    for name in ContactIndex.names(kind, of: state) {
                        expectedMembers.append(ContactIndex.memberPrefix(kind, name) + Array(key))
                    }
                }
                return true
            }
            var found: [String] = []
            for (table, name, expected) in [
                (scores, "scores", expectedScores.map { ($0, [UInt8]()) }),
                (members, "members", expectedMembers.map { ($0, [UInt8]()) }),
            ] {
                let sorted = expected.sorted { $0.0.lexicographicallyPrecedes($1.0) }
                var stored: [([UInt8], [UInt8])] = []
                try txn.scan(table) { key, value in
                    stored.append((Array(key), Array(value)))
                    return true
                }
                if stored.count != sorted.count {
                    found.append("\(name): \(stored.count) records, \(sorted.count) derived from what it indexes")
                }
                for (one, other) in zip(stored, sorted) where one.0 != other.0 || one.1 != other.1 {
                    found.append("\(name): a record differs from what it indexes")
                    break
                }
                if found.count >= limit { break }
            }
            return Array((found + (try trailDifferences(txn, limit: limit))).prefix(limit))
        }
    }
}
