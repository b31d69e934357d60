public import TallyCore

/// The `url_visits` table (U2): per contact and URL, the facts any pattern's page-visit state is derived from.
///
/// ```
/// key:   LEB128 length + contact id · URL (the event's bytes)
/// value: u8 format (1) · i64 LE hits · u64 LE seq of the latest hit · i64 LE its at · i64 LE dwell ms
/// ```
enum URLVisitCodec {
    static let format: UInt8 = 1

    static func prefix(_ contact: String) -> [UInt8] { ContactKey.prefix(contact) }

    static func encode(_ visit: URLVisit) -> [UInt8] {
        var writer = ByteWriter(capacity: 33)
        writer.u8(format)
        writer.int64(visit.hits)
        writer.int64(Int64(bitPattern: visit.lastSeq))
        writer.int64(visit.lastAt)
        writer.int64(visit.dwell)
        return writer.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(CorruptRecordError) -> URLVisit {
        var reader = ByteReader(bytes, table: "url_visits")
        guard try reader.u8() == format else { throw reader.corrupt("unknown url visit format") }
        let visit = URLVisit(
            hits: try reader.int64(), lastSeq: UInt64(bitPattern: try reader.int64()), lastAt: try reader.int64(),
            dwell: try reader.int64())
        guard reader.isAtEnd else { throw reader.corrupt("trailing bytes") }
        return visit
    }
}

extension ProjectionTransaction {
    /// Applies a `url.hit`'s fact (the event at `seq`) to its contact's URL facts in `batch`: rows the batch has not
    /// touched yet are read from the table once, and ``addURLFacts(_:)`` writes each row once, in key order.
    public func addURLFact(_ fact: URLFact, contact: String, seq: UInt64, to batch: inout URLFactBatch) throws {
        let prefix = URLVisitCodec.prefix(contact)
        try fact.apply(seq: seq) { url in
            let key = prefix + Array(url.utf8)
            if let row = batch.rows[KeyBytes(key)] { return row }
            return try txn.get(store.urlVisits, key).map { raw in
                try raw.withUnsafeBytes { try URLVisitCodec.decode($0) }
            }
        } _: { url, visit in
            batch.rows[KeyBytes(prefix + Array(url.utf8))] = visit
        }
    }

    /// Writes a batch's URL facts, in key order.
    public func addURLFacts(_ batch: URLFactBatch) throws {
        for (key, visit) in batch.rows.sorted(by: { keyPrecedes($0.key.bytes, $1.key.bytes) }) {
            try txn.put(store.urlVisits, key.bytes, URLVisitCodec.encode(visit))
        }
    }

    /// A contact's URL facts, in URL byte order.
    public func urlVisits(contact: String) throws -> [(url: String, visit: URLVisit)] {
        let prefix = URLVisitCodec.prefix(contact)
        var rows: [(url: String, visit: URLVisit)] = []
        try txn.scan(store.urlVisits, from: prefix) { key, value in
            guard key.starts(with: prefix) else { return false }
            let url = String(decoding: UnsafeRawBufferPointer(rebasing: key[prefix.count...]), as: UTF8.self)
            rows.append((url, try URLVisitCodec.decode(value)))
            return true
        }
        return rows
    }

    /// Up to `limit` contacts with URL facts after `after` (from the first when nil), in the table's order: by id
    /// length, then by id bytes.
    public func contactsWithURLVisits(after: String?, limit: Int) throws -> [String] {
        var contacts: [String] = []
        // A contact's keys all start with its prefix; the prefix + 0xFF (never in UTF-8) is past every one of them.
        var start = after.map { URLVisitCodec.prefix($0) + [0xFF] }
        while contacts.count < limit {
            var next: (String, [UInt8])?
            try txn.scan(store.urlVisits, from: start) { key, _ in
                var reader = ByteReader(key, table: "url_visits")
                let contact = try reader.string()
                next = (contact, URLVisitCodec.prefix(contact) + [0xFF])
                return false
            }
            guard let (contact, skip) = next else { break }
            contacts.append(contact)
            start = skip
        }
        return contacts
    }

    /// The U2 backfill in progress, if any: the publication that introduced the patterns, their texts, and the
    /// last contact done.
    public func backfillPass() throws -> BackfillPass? {
        guard let raw = try txn.get(store.meta, ProjectionStore.backfillKey) else { return nil }
        return try raw.withUnsafeBytes { bytes in
            var reader = ByteReader(bytes, table: "meta")
            let seq = UInt64(bitPattern: try reader.int64())
            var patterns: [String] = []
            for _ in 0..<(try reader.varint()) { patterns.append(try reader.string()) }
            let after = try reader.u8() == 1 ? try reader.string() : nil
            return BackfillPass(seq: seq, patterns: patterns, after: after)
        }
    }

    /// Saves the backfill's progress, or removes it when `pass` is nil.
    public func setBackfillPass(_ pass: BackfillPass?) throws {
        guard let pass else {
            _ = try txn.delete(store.meta, ProjectionStore.backfillKey)
            return
        }
        var writer = ByteWriter()
        writer.int64(Int64(bitPattern: pass.seq))
        writer.varint(UInt64(pass.patterns.count))
        for pattern in pass.patterns { writer.string(pattern) }
        writer.optionalString(pass.after)
        try txn.put(store.meta, ProjectionStore.backfillKey, writer.bytes)
    }
}

/// A U2 backfill in progress: the patterns a rules version introduced get every contact's history, a bounded batch
/// of contacts per transaction, while the fold goes on (a contact the fold touches first is brought up to date
/// then).
public struct BackfillPass: Sendable, Equatable {
    /// The latest publication whose patterns it backfills.
    public var seq: UInt64
    /// The patterns' texts as the rules wrote them.
    public var patterns: [String]
    /// The last contact done, in the `url_visits` table's order; nil before the first batch.
    public var after: String?

    public init(seq: UInt64, patterns: [String], after: String? = nil) {
        self.seq = seq
        self.patterns = patterns
        self.after = after
    }

    /// Whether `contact` still waits for the pass: it comes after ``after`` in the order the pass visits contacts,
    /// the `url_visits` table's (length-prefixed ids: by length, then by bytes).
    public func pending(_ contact: String) -> Bool {
        guard let after else { return true }
        return URLVisitCodec.prefix(after).lexicographicallyPrecedes(URLVisitCodec.prefix(contact))
    }
}

/// The URL facts (U2) of one fold batch, kept in memory by their `url_visits` key until the batch writes them.
public struct URLFactBatch {
    fileprivate var rows: [KeyBytes: URLVisit] = [:]

    public init() {}
}
