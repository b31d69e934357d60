import Foundation
public import TallyCore

/// The tables that let one contact's state be derived again from its own events (issue 14, SPEC §9):
///
/// ```
/// aliases:       0x01 · alias id                                    → the contact it resolves to
///                0x02 · LEB128 length + contact id · alias id      → (empty)   (a contact's aliases)
/// clocks:        0x01 · u64 BE now with its sign bit flipped        → u64 BE seq of the clock event
///                0x02 · u64 BE seq of the clock event               → u64 BE now, sign bit flipped
/// aging_awards:  u64 BE seq · u32 BE index (an aging award's key)   → u64 BE its due time, sign bit flipped
/// ```
///
/// A contact's events are listed by `history` (see ``Trail``).
/// `clocks` holds the clock events that moved the fold's now, so that a contact's re-fold finds the clock at
/// which each of its awards aged; `aging_awards` finds a contact's waiting awards in the due index from its
/// events' sequence numbers.
enum IdentityCodec {
    static let aliasTag: UInt8 = 1
    static let memberTag: UInt8 = 2
    static let clockByNowTag: UInt8 = 1
    static let clockBySeqTag: UInt8 = 2

    static func aliasKey(_ alias: String) -> [UInt8] { [aliasTag] + Array(alias.utf8) }

    static func memberPrefix(_ contact: String) -> [UInt8] { [memberTag] + ContactKey.prefix(contact) }

    static func sortable(_ time: Int64) -> [UInt8] { SequenceKey.encode(UInt64(bitPattern: time) ^ (1 << 63)) }

    static func time(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        SequenceKey.decode(bytes).map { Int64(bitPattern: $0 ^ (1 << 63)) }
    }

    /// An aging award's key: its audit position (the awarding event's seq and the award's index), encoded as the
    /// `audit` table keys it.
    static func awardKey(seq: UInt64, index: UInt32) -> [UInt8] {
        AuditCodec.key(AuditPosition(seq: seq, index: index))
    }
}

extension ProjectionTransaction {
    // MARK: aliases

    /// The contact `id` resolves to when it is an alias (I2); nil when it is not one.
    public func canonical(of id: String) throws -> String? {
        try txn.get(store.aliases, IdentityCodec.aliasKey(id)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether any contact is an alias: while none is, the fold skips resolving ids.
    public func hasAliases() throws -> Bool { try txn.count(store.aliases) > 0 }

    /// The aliases of `contact`, in byte order.
    public func aliases(of contact: String) throws -> [String] {
        let prefix = IdentityCodec.memberPrefix(contact)
        var aliases: [String] = []
        try txn.scan(store.aliases, from: prefix) { key, _ in
            guard key.starts(with: prefix) else { return false }
            aliases.append(String(decoding: UnsafeRawBufferPointer(rebasing: key[prefix.count...]), as: UTF8.self))
            return true
        }
        return aliases
    }

    /// Makes `alias` and its own aliases resolve to `contact` (one lookup resolves any chain).
    public func addAlias(_ alias: String, to contact: String) throws {
        let moved = try aliases(of: alias)
        for member in moved {
            _ = try txn.delete(store.aliases, IdentityCodec.memberPrefix(alias) + Array(member.utf8))
        }
        for member in moved + [alias] {
            try txn.put(store.aliases, IdentityCodec.aliasKey(member), Array(contact.utf8))
            try txn.put(store.aliases, IdentityCodec.memberPrefix(contact) + Array(member.utf8), [])
        }
    }

    /// Forgets `contact`'s aliases (an erasure, I8) and returns them.
    @discardableResult
    public func removeAliases(of contact: String) throws -> [String] {
        let members = try aliases(of: contact)
        for member in members {
            _ = try txn.delete(store.aliases, IdentityCodec.aliasKey(member))
            _ = try txn.delete(store.aliases, IdentityCodec.memberPrefix(contact) + Array(member.utf8))
        }
        return members
    }

    // MARK: clocks

    /// Records a clock event that moved the fold's now to `now`: the table holds only such clocks, so both its
    /// orders (by now, by sequence number) agree.
    public func addClock(_ now: Int64, seq: UInt64) throws {
        try txn.put(
            store.clocks, [IdentityCodec.clockByNowTag] + IdentityCodec.sortable(now), SequenceKey.encode(seq))
        try txn.put(store.clocks, [IdentityCodec.clockBySeqTag] + SequenceKey.encode(seq), IdentityCodec.sortable(now))
    }

    /// The first clock event after the one at `seq` whose now is at or after `due`: the clock at which an award
    /// due then, waiting since `seq`, aged (D4).
    public func firstClock(atOrAfter due: Int64, after seq: UInt64) throws -> (now: Int64, seq: UInt64)? {
        guard let byNow = try firstClock(from: [IdentityCodec.clockByNowTag] + IdentityCodec.sortable(due)) else {
            return nil
        }
        if byNow.seq > seq { return byNow }
        // Clocks only move now forward: every clock after `seq` is later than `byNow`, so at or after `due`.
        guard seq < .max else { return nil }
        return try firstClock(from: [IdentityCodec.clockBySeqTag] + SequenceKey.encode(seq + 1))
    }

    /// The now of the last clock event before `seq` that moved the fold's now, or nil when none did.
    public func clockNow(before seq: UInt64) throws -> Int64? {
        guard seq > 1 else { return nil }
        var now: Int64?
        try txn.scanBackward(store.clocks, from: [IdentityCodec.clockBySeqTag] + SequenceKey.encode(seq - 1)) {
            key, value in
            guard key.first == IdentityCodec.clockBySeqTag else { return false }
            guard let time = IdentityCodec.time(value) else {
                throw CorruptRecordError(table: "clocks", message: "record of \(key.count)/\(value.count) bytes")
            }
            now = time
            return false
        }
        return now
    }

    private func firstClock(from start: [UInt8]) throws -> (now: Int64, seq: UInt64)? {
        var found: (Int64, UInt64)?
        try txn.scan(store.clocks, from: start) { key, value in
            guard key.first == start[0] else { return false }
            let rest = UnsafeRawBufferPointer(rebasing: key[1...])
            let byNow = start[0] == IdentityCodec.clockByNowTag
            guard let now = byNow ? IdentityCodec.time(rest) : IdentityCodec.time(value),
                let seq = byNow ? SequenceKey.decode(value) : SequenceKey.decode(rest)
            else {
                throw CorruptRecordError(table: "clocks", message: "record of \(key.count)/\(value.count) bytes")
            }
            found = (now, seq)
            return false
        }
        return found
    }
}

extension ProjectionTransaction {
    // MARK: what a merge moves and an erasure removes

    /// Removes a contact's record and its list index entries.
    public func removeContact(_ id: String, previous: ContactState) throws {
        _ = try txn.delete(store.contacts, Array(id.utf8))
        _ = try txn.delete(store.scores, ContactIndex.scoreKey(nil, previous.points, id))
        for (group, score) in previous.groups {
            _ = try txn.delete(store.scores, ContactIndex.scoreKey(group, score, id))
        }
        for kind in ContactIndex.Membership.allCases {
            for name in ContactIndex.names(kind, of: previous) {
                _ = try txn.delete(store.members, ContactIndex.memberPrefix(kind, name) + Array(id.utf8))
            }
        }
    }

    /// Removes a contact's open session hits.
    public func removeOpenHits(contact: String) throws {
        try removeRange(store.sessions, prefix: ContactKey.prefix(contact))
    }

    /// Replaces a contact's URL facts (U2) with `rows`.
    public func replaceURLVisits(contact: String, with rows: [(url: String, visit: URLVisit)]) throws {
        let prefix = URLVisitCodec.prefix(contact)
        try removeRange(store.urlVisits, prefix: prefix)
        for (url, visit) in rows { try txn.put(store.urlVisits, prefix + Array(url.utf8), URLVisitCodec.encode(visit)) }
    }

    /// Deletes every record whose key starts with `prefix`.
    func removeRange(_ table: LMDBDatabase, prefix: [UInt8]) throws {
        var keys: [[UInt8]] = []
        try txn.scan(table, from: prefix) { key, _ in
            guard key.starts(with: prefix) else { return false }
            keys.append(Array(key))
            return true
        }
        for key in keys { _ = try txn.delete(table, key) }
    }
}

extension ProjectionTransaction {
    // MARK: erasure

    /// I8: removes every record of `contact` and its `aliases`: state and list indexes, sessions, URL facts,
    /// waiting awards, audit trail (its change-feed positions), history and trail, aliases and outbox entries. Returns
    /// the sequence numbers of its events (its history) and the contact's email address, if it had one — what an
    /// erasure then checks is gone (not its owner's address, which other contacts share, nor the outbox's email
    /// template names).
    public func erase(_ contact: String) throws -> (history: [UInt64], aliases: [String], emails: Set<String>) {
        var emails: Set<String> = []
        if let email = try self.contact(contact)?.email { emails.insert(email) }
        let history = try removeRecords(of: contact)
        let aliases = try removeAliases(of: contact)
        for id in [contact] + aliases {
            _ = try txn.delete(store.existingDone, Array(id.utf8))
            let outboxPrefix = Array((id + "/").utf8)
            var doomed: [OutboxEntry] = []
            try txn.scan(store.outbox, from: outboxPrefix) { key, value in
                guard key.starts(with: outboxPrefix) else { return false }
                let entry = try OutboxCodec.decode(value)
                if ByteString(entry.contact) == ByteString(id) { doomed.append(entry) }
                return true
            }
            for entry in doomed {
                if entry.isDue { _ = try txn.delete(store.outboxDue, OutboxCodec.dueKey(entry)) }
                _ = try txn.delete(store.outbox, Array(entry.key.utf8))
            }
        }
        return (history, aliases, emails)
    }

    /// Removes `contact`'s own records — state and list indexes, sessions, URL facts, waiting awards, audit trail
    /// and history — leaving its aliases and outbox entries: what an erasure removes first (I8), and all that a
    /// contact merged into another partition's leaves in its own (K4). Returns its history.
    @discardableResult
    public func removeRecords(of contact: String) throws -> [UInt64] {
        if let state = try self.contact(contact) { try removeContact(contact, previous: state) }
        try removeOpenHits(contact: contact)
        try replaceURLVisits(contact: contact, with: [])
        let history = try removeHistory(contact)
        try removeAging(awardedAt: history)
        try removeAudit(contact)
        return history
    }

    /// The contact an erasure under way is removing (I8), saved before the log is touched so that a restart
    /// finishes it.
    public func pendingErasure() throws -> String? {
        try txn.get(store.meta, ProjectionStore.erasingKey).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A cluster partition's erasure under way (K4, I8): saved before its copy is touched, cleared once the stream
    /// no longer holds the events and holds the erasure's record, so that the holder's next start finishes it.
    public func pendingStreamErasure() throws -> StreamErasure? {
        guard let value = try txn.get(store.meta, ProjectionStore.erasingStreamKey) else { return nil }
        do {
            return try JSONDecoder().decode(StreamErasure.self, from: Data(value))
        } catch {
            throw CorruptRecordError(table: "meta", message: "erasing_stream: \(error)")
        }
    }

    public func setPendingStreamErasure(_ erasure: StreamErasure?) throws {
        if let erasure {
            try txn.put(store.meta, ProjectionStore.erasingStreamKey, Array(try JSONEncoder().encode(erasure)))
        } else {
            _ = try txn.delete(store.meta, ProjectionStore.erasingStreamKey)
        }
    }

    public func setPendingErasure(_ contact: String?) throws {
        if let contact {
            try txn.put(store.meta, ProjectionStore.erasingKey, Array(contact.utf8))
        } else {
            _ = try txn.delete(store.meta, ProjectionStore.erasingKey)
        }
    }
}

/// A cluster partition's erasure (K4, I8): the ids it erases (the contact and its aliases), the keyed hash its
/// `contact.erased` record names, and the positions — stream sequences — of the events it removes from the copy and
/// from the stream.
public struct StreamErasure: Codable, Sendable, Equatable {
    public var names: [String]
    public var hash: String
    public var at: Int64
    public var positions: [UInt64]

    public init(names: [String], hash: String, at: Int64, positions: [UInt64]) {
        self.names = names
        self.hash = hash
        self.at = at
        self.positions = positions
    }
}
