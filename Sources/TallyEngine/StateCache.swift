/// The decoded states a ``ProjectionFolder`` wrote last, kept across batches so that the contacts and sessions
/// an event stream keeps coming back to (a Zipf-like few) are not read and decoded from LMDB for every batch.
///
/// Holds only what is committed: the folder adds a batch's states after its transaction committed, so a cached
/// state always equals the stored one. Bounded by two generations of `limit / 2` entries each: a lookup in the
/// older generation promotes the entry, and when the newer one is full the older one is dropped — an LRU
/// approximation with no per-entry bookkeeping.
struct StateCache<Key: Hashable, Value> {
    let limit: Int
    private var newer: [Key: Value] = [:]
    private var older: [Key: Value] = [:]

    init(limit: Int) {
        self.limit = limit
    }

    /// The cached value, promoted to the newer generation.
    mutating func value(_ key: Key) -> Value? {
        if let value = newer[key] { return value }
        guard let value = older.removeValue(forKey: key) else { return nil }
        insert(key, value)
        return value
    }

    /// Caches `value` as the committed value of `key`.
    mutating func insert(_ key: Key, _ value: Value) {
        if newer.count >= limit / 2, newer[key] == nil {
            older = newer
            newer.removeAll(keepingCapacity: true)
        }
        newer[key] = value  // a stale value left in `older` is shadowed by this one until `older` is dropped
    }

    mutating func removeAll() {
        newer.removeAll()
        older.removeAll()
    }
}
