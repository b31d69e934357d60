extension ProjectionStore {
    /// The differences between these (live) projections and `expected`, a fresh fold of the same log to the
    /// same checkpoint (A5); empty when they agree. Every table (``ProjectionStore/namedTables``: contacts, sessions,
    /// audit entries, the outbox with its due index — delivery outcomes are events in the log, T7 —, the aging due
    /// index, the list and feed indexes, the URL facts and the metadata) must be equal, byte for byte. At most
    /// `limit` differences are listed.
    /// Nil when this store is no longer at `checkpoint`, or is in the middle of a pass (fold the fresh one further and
    /// call again).
    public func differences(from expected: ProjectionStore, checkpoint: UInt64, limit: Int = 100) throws -> [String]? {
        var found: [String] = []
        let sameCheckpoint = try environment.read { live in
            let projections = ProjectionTransaction(txn: live, store: self)
            // Mid-pass, the checkpoint's event is not fully applied yet: compare once the pass is over.
            guard try projections.checkpoint() == checkpoint, try !projections.anyPassPending() else { return false }
            try expected.environment.read { fresh in
                for ((name, table), (_, expectedTable)) in zip(namedTables, expected.namedTables) {
                    guard found.count < limit else { return }
                    try Self.compare(live, expectedTable, fresh, table, name: name, limit: limit, into: &found)
                }
            }
            return true
        }
        return sameCheckpoint ? found : nil
    }

    /// Merges two sorted tables and reports keys missing on either side and differing values.
    private static func compare(
        _ live: LMDBTransaction, _ expectedTable: LMDBDatabase, _ fresh: LMDBTransaction, _ liveTable: LMDBDatabase,
        name: String, limit: Int, into found: inout [String]
    ) throws {
        var expectedRows: [([UInt8], [UInt8])] = []
        try fresh.scan(expectedTable) { key, value in
            expectedRows.append((Array(key), Array(value)))
            return true
        }
        var next = 0
        func describe(_ key: [UInt8]) -> String {
            let text = String(decoding: key, as: UTF8.self)
            return text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
                ? text : key.map { String($0, radix: 16) }.joined(separator: " ")
        }
        try live.scan(liveTable) { key, value in
            let liveKey = Array(key)
            while next < expectedRows.count, expectedRows[next].0.lexicographicallyPrecedes(liveKey) {
                found.append("\(name): missing \(describe(expectedRows[next].0))")
                next += 1
            }
            if next < expectedRows.count, expectedRows[next].0 == liveKey {
                if !expectedRows[next].1.elementsEqual(value) {
                    found.append("\(name): \(describe(liveKey)) differs from the replay")
                }
                next += 1
            } else {
                found.append("\(name): unexpected \(describe(liveKey))")
            }
            return found.count < limit
        }
        while next < expectedRows.count, found.count < limit {
            found.append("\(name): missing \(describe(expectedRows[next].0))")
            next += 1
        }
    }
}

extension ProjectionStore {
    /// Every table of the projections with its records in key order, as raw bytes: what two folds of one log
    /// must agree on byte for byte (the batching property test).
    public func rawTables() throws -> [(name: String, records: [(key: [UInt8], value: [UInt8])])] {
        try environment.read { txn in
            try namedTables.map { name, table in
                var records: [(key: [UInt8], value: [UInt8])] = []
                try txn.scan(table) { key, value in
                    records.append((Array(key), Array(value)))
                    return true
                }
                return (name, records)
            }
        }
    }
}
