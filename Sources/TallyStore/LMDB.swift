import CLMDB
import Glibc

/// A failed LMDB call: the C result code and the operation that returned it.
public struct LMDBError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    public var isMapFull: Bool { code == MDB_MAP_FULL }
    /// The disk is full or failing (`ENOSPC`, `EIO`, `EDQUOT`): retrying once space is back can succeed.
    public var isOutOfSpace: Bool { code == ENOSPC || code == EIO || code == EDQUOT }

    public var description: String {
        "\(operation): \(String(cString: mdb_strerror(code))) (\(code))"
    }
}

@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if code != 0 { throw LMDBError(code: code, operation: operation()) }
}

/// A named table inside an environment.
public struct LMDBDatabase: Sendable, Equatable {
    let dbi: MDB_dbi
}

/// An open LMDB environment: one directory holding `data.mdb` and `lock.mdb`.
///
/// `@unchecked Sendable` because the invariants LMDB needs are kept here rather than by the type system:
/// the `MDB_env*` handle is immutable after `init`; every transaction begins and ends inside one call of
/// ``read(_:)`` or ``write(_:)`` on one thread, never across an `await` (the closures are synchronous);
/// `MDB_NOTLS` frees read transactions from thread-local slots; and ``grow(to:)``, the one call that needs no
/// transaction open in the process, takes ``resizeLock`` exclusively while every transaction holds it shared.
public final class LMDBEnvironment: @unchecked Sendable {
    let handle: OpaquePointer
    public let path: String
    /// The number of named tables the environment was opened for.
    public let maxDatabases: UInt32
    private let resizeLock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    /// Opens (creating if needed) the environment in directory `path`.
    public init(path: String, mapSize: Int, maxDatabases: UInt32 = 16) throws(LMDBError) {
        self.path = path
        self.maxDatabases = maxDatabases
        mkdir(path, 0o750)
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(code: EINVAL, operation: "mdb_env_create") }
        do throws(LMDBError) {
            try check(mdb_env_set_maxdbs(env, maxDatabases), "mdb_env_set_maxdbs")
            try check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize")
            try check(mdb_env_set_maxreaders(env, 256), "mdb_env_set_maxreaders")
            try check(mdb_env_open(env, path, UInt32(MDB_NOTLS), 0o640), "mdb_env_open \(path)")
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.handle = env
        pthread_rwlock_init(resizeLock, nil)
        var dead: Int32 = 0
        mdb_reader_check(env, &dead)  // clear reader slots left by killed processes
    }

    deinit {
        mdb_env_close(handle)
        pthread_rwlock_destroy(resizeLock)
        resizeLock.deallocate()
    }

    /// The current size of the memory map in bytes.
    public var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    /// Bytes of the map in use (pages up to the last one written).
    public var usedBytes: Int {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        mdb_env_info(handle, &info)
        mdb_env_stat(handle, &stat)
        return (info.me_last_pgno + 1) * Int(stat.ms_psize)
    }

    /// Grows the map to `size` bytes; waits until no transaction of this process is open.
    public func grow(to size: Int) throws(LMDBError) {
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try check(mdb_env_set_mapsize(handle, size), "mdb_env_set_mapsize")
    }

    /// Writes a consistent, compacted copy of the environment into the empty directory `path` while others keep
    /// reading and writing (a hot backup: LMDB copies one read transaction's snapshot).
    public func copy(to path: String) throws(LMDBError) {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try check(mdb_env_copy2(handle, path, UInt32(MDB_CP_COMPACT)), "mdb_env_copy2 \(path)")
    }

    /// Writes the live records of every table into a new environment in the empty directory `path`, put afresh in
    /// key order (an erasure, I8). Unlike ``copy(to:)``, whose compaction copies pages as they are — an overflow
    /// page whole, with whatever the buffer LMDB built it in held before past the value's end — the new pages hold
    /// nothing but the records: LMDB zeroes a page buffer it allocates, and reuses only the new environment's own.
    /// Reads one snapshot; writes transactions of `batch` records without syncing, then syncs once.
    public func rewrite(to path: String, batch: Int = 50_000) throws {
        let target = try LMDBEnvironment(path: path, mapSize: mapSize, maxDatabases: maxDatabases)
        try target.deferSync()
        try read { source in
            var main: MDB_dbi = 0
            try check(mdb_dbi_open(source.handle, nil, 0, &main), "mdb_dbi_open")
            var names: [String] = []
            try source.scan(LMDBDatabase(dbi: main)) { key, _ in
                names.append(String(decoding: key, as: UTF8.self))
                return true
            }
            for name in names {
                var dbi: MDB_dbi = 0
                try check(mdb_dbi_open(source.handle, name, 0, &dbi), "mdb_dbi_open \(name)")
                let (from, to) = (LMDBDatabase(dbi: dbi), try target.database(name))
                var start: [UInt8]?
                repeat {
                    let begin = start
                    start = try target.write { txn -> [UInt8]? in
                        var next: [UInt8]?
                        var count = 0
                        try source.scan(from, from: begin) { key, value in
                            guard count < batch else {
                                next = Array(key)
                                return false
                            }
                            try txn.put(to, key, value, flags: LMDBPutFlags.append)
                            count += 1
                            return true
                        }
                        return next
                    }
                } while start != nil
            }
        }
        try target.sync()
    }

    /// Whether commits wait for the disk. Off for an environment nobody depends on yet — a rebuild's or a dry
    /// run's, which a crash throws away and restarts — so its commits cost no `fdatasync`; ``syncAndMakeDurable()``
    /// turns it back on before the environment is relied on.
    public func deferSync() throws(LMDBError) {
        try check(mdb_env_set_flags(handle, UInt32(MDB_NOSYNC), 1), "mdb_env_set_flags")
    }

    /// Flushes everything committed so far to disk (`fdatasync`), whether or not commits wait for it.
    public func sync() throws(LMDBError) {
        try check(mdb_env_sync(handle, 1), "mdb_env_sync")
    }

    /// Flushes everything committed so far to disk and makes every later commit durable again.
    public func syncAndMakeDurable() throws(LMDBError) {
        try check(mdb_env_sync(handle, 1), "mdb_env_sync")
        try check(mdb_env_set_flags(handle, UInt32(MDB_NOSYNC), 0), "mdb_env_set_flags")
    }

    /// Opens or creates a named table, in a write transaction of its own.
    public func database(_ name: String) throws(LMDBError) -> LMDBDatabase {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        let txn = try begin(flags: 0)
        var dbi: MDB_dbi = 0
        let code = mdb_dbi_open(txn, name, UInt32(MDB_CREATE), &dbi)
        guard code == 0 else {
            mdb_txn_abort(txn)
            throw LMDBError(code: code, operation: "mdb_dbi_open \(name)")
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        return LMDBDatabase(dbi: dbi)
    }

    private func begin(flags: UInt32) throws(LMDBError) -> OpaquePointer {
        while true {
            var txn: OpaquePointer?
            let code = mdb_txn_begin(handle, nil, flags, &txn)
            if code == MDB_MAP_RESIZED {  // another process grew the map: adopt its size and retry
                try check(mdb_env_set_mapsize(handle, 0), "mdb_env_set_mapsize")
                continue
            }
            try check(code, "mdb_txn_begin")
            guard let txn else { throw LMDBError(code: EINVAL, operation: "mdb_txn_begin") }
            return txn
        }
    }

    /// Runs `body` in a read-only transaction.
    public func read<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        let txn = try begin(flags: UInt32(MDB_RDONLY))
        defer { mdb_txn_abort(txn) }
        return try body(LMDBTransaction(handle: txn))
    }

    /// Runs `body` in a write transaction and commits it (a durable commit: data pages, then the meta page).
    ///
    /// When the map is full, the transaction is aborted, the map doubled, and `body` run again from the start:
    /// `body` must compute everything it writes inside the transaction so that a rerun is correct.
    /// An error thrown by `body` aborts the transaction and is rethrown.
    /// So nothing in `body` may have an effect outside the transaction (a metric, a log line, a continuation
    /// resumed): do that after `write` returns.
    public func write<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        var rerunForced = false
        while true {
            do {
                return try writeOnce(body, forceRerun: !rerunForced && WriteRerunFault.fires())
            } catch let error as LMDBError where error.isMapFull {
                try grow(to: mapSize * 2)
            } catch is WriteRerunFault {
                rerunForced = true
            }
        }
    }

    private func writeOnce<T>(_ body: (LMDBTransaction) throws -> T, forceRerun: Bool) throws -> T {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        let txn = try begin(flags: 0)
        let value: T
        do {
            value = try body(LMDBTransaction(handle: txn))
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        if forceRerun {
            mdb_txn_abort(txn)
            throw WriteRerunFault()
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")  // the commit frees the transaction even when it fails
        return value
    }
}

/// A transaction, valid only inside the closure of ``LMDBEnvironment/read(_:)`` or ``LMDBEnvironment/write(_:)``.
public struct LMDBTransaction {
    let handle: OpaquePointer

    /// The value stored under `key`, borrowed from the map: valid until the transaction ends.
    public func get(_ db: LMDBDatabase, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let code = mdb_get(handle, db.dbi, &k, &v)
        if code == MDB_NOTFOUND { return nil }
        try check(code, "mdb_get")
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    /// Like ``get(_:_:)-(_,UnsafeRawBufferPointer)`` with the value copied out.
    public func get(_ db: LMDBDatabase, _ key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { raw in try get(db, raw).map { Array($0) } }
    }

    /// Stores `value` under `key`. With `MDB_NOOVERWRITE`, returns false instead of replacing an existing key.
    @discardableResult
    public func put(
        _ db: LMDBDatabase, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, flags: Int32 = 0
    )
        throws -> Bool
    {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        let code = mdb_put(handle, db.dbi, &k, &v, UInt32(flags))
        if code == MDB_KEYEXIST { return false }
        try check(code, "mdb_put")
        return true
    }

    @discardableResult
    public func put(_ db: LMDBDatabase, _ key: [UInt8], _ value: [UInt8], flags: Int32 = 0) throws -> Bool {
        try key.withUnsafeBytes { k in
            try value.withUnsafeBytes { v in try put(db, k, v, flags: flags) }
        }
    }

    /// Removes `key`; returns false when it was absent.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { raw in
            var k = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            let code = mdb_del(handle, db.dbi, &k, nil)
            if code == MDB_NOTFOUND { return false }
            try check(code, "mdb_del")
            return true
        }
    }

    /// Removes every entry of a table.
    public func clear(_ db: LMDBDatabase) throws {
        try check(mdb_drop(handle, db.dbi, 0), "mdb_drop")
    }

    /// Visits entries in key order starting at the first key ≥ `from` (or the first key), until `body` returns
    /// false. Keys and values are borrowed from the map for the duration of the call.
    public func scan(
        _ db: LMDBDatabase, from: [UInt8]? = nil,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try walk(db, step: MDB_NEXT, body) { cursor, k, v in
            guard let from else { return mdb_cursor_get(cursor, &k, &v, MDB_FIRST) }
            return from.withUnsafeBytes { raw in
                k = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
        }
    }

    /// Visits entries in descending key order starting at the last key ≤ `from`, until `body` returns false.
    public func scanBackward(
        _ db: LMDBDatabase, from: [UInt8],
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try walk(db, step: MDB_PREV, body) { cursor, k, v in
            let code = from.withUnsafeBytes { raw in
                k = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
            if code == MDB_NOTFOUND { return mdb_cursor_get(cursor, &k, &v, MDB_LAST) }
            guard code == 0, !UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size).elementsEqual(from) else {
                return code
            }
            return mdb_cursor_get(cursor, &k, &v, MDB_PREV)  // the first key ≥ `from` is greater: step back
        }
    }

    /// Opens a cursor, positions it with `start`, and visits entries moving by `step` until `body` returns false
    /// or the table ends.
    private func walk(
        _ db: LMDBDatabase, step: MDB_cursor_op,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool,
        start: (OpaquePointer?, inout MDB_val, inout MDB_val) -> Int32
    ) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var code = start(cursor, &k, &v)
        while code == 0 {
            let key = UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size)
            let value = UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
            guard try body(key, value) else { return }
            code = mdb_cursor_get(cursor, &k, &v, step)
        }
        if code != MDB_NOTFOUND { try check(code, "mdb_cursor_get") }
    }

    /// The last key of a table, copied, or nil when it is empty.
    public func lastKey(_ db: LMDBDatabase) throws -> [UInt8]? {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        let code = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
        if code == MDB_NOTFOUND { return nil }
        try check(code, "mdb_cursor_get")
        return Array(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size))
    }

    /// Number of entries in a table.
    public func count(_ db: LMDBDatabase) throws -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(handle, db.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }
}

/// Flags for ``LMDBTransaction/put(_:_:_:flags:)``.
public enum LMDBPutFlags {
    public static let noOverwrite = MDB_NOOVERWRITE
    public static let append = MDB_APPEND
}

/// A test hook: with `TALLY_FAULT=rerun:P` in the environment (read once), a write transaction is aborted after
/// its body ran, with probability P, and its body run again — as when the map is full, but on any write — so
/// that the tests catch effects inside write closures (issue 15). Inert without it.
struct WriteRerunFault: Error {
    static let probability: Double = {
        guard let raw = getenv("TALLY_FAULT") else { return 0 }
        for item in String(cString: raw).split(separator: ",") {
            let parts = item.split(separator: ":")
            if parts.count == 2, parts[0] == "rerun", let probability = Double(parts[1]) { return probability }
        }
        return 0
    }()

    static func fires() -> Bool { probability > 0 && Double.random(in: 0..<1) < probability }
}
