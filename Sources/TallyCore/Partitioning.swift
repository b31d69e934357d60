/// The one partition function (SPEC K1): which of `count` partitions a contact belongs to, from the bytes of its id.
///
/// A cluster publishes a contact's events to its partition's subject and folds each partition on one node; a
/// parallel rebuild would fold partitions on separate threads. Both must agree for ever, so the function is fixed
/// here and pinned by tests: FNV-1a (64-bit) over the id's UTF-8 bytes, then Lamping and Veach's jump consistent
/// hash into `count` buckets — growing from P to P + 1 partitions moves only about 1 / (P + 1) of the contacts.
///
/// Ids are bytes (SPEC §1): two ids that are canonically equivalent Unicode but differ in bytes are different
/// contacts, and may land in different partitions.
public struct Partitioning: Sendable, Equatable {
    /// How many partitions there are (at least 1).
    public let count: Int

    public init?(count: Int) {
        guard count >= 1, count <= Self.maximum else { return nil }
        self.count = count
    }

    /// The most partitions a cluster may have: each is a subject, a lease and a local store.
    public static let maximum = 4096

    /// The partition of the contact with this id.
    public func partition(of contact: some Sequence<UInt8>) -> Int {
        Self.jump(Self.fnv1a(contact), buckets: count)
    }

    /// The partition of the contact with this id (its UTF-8 bytes, as stored).
    public func partition(of contact: String) -> Int { partition(of: contact.utf8) }

    static func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// Jump consistent hash (Lamping and Veach, 2014): a bucket in `0..<buckets` for `key`.
    static func jump(_ key: UInt64, buckets: Int) -> Int {
        var key = key
        var bucket: Int64 = -1
        var next: Int64 = 0
        while next < Int64(buckets) {
            bucket = next
            key = key &* 2_862_933_555_777_941_757 &+ 1
            next = Int64(Double(bucket + 1) * (Double(UInt64(1) << 31) / Double((key >> 33) + 1)))
        }
        return Int(bucket)
    }
}

/// The partition a fold is for, in a cluster (SPEC K3, K4): a contact whose id belongs to another partition is
/// *foreign* here. A foreign contact's events reach this partition only when its history is moved here by a merge
/// across partitions (I2): they are folded for the contact until the merge that follows them, with no side effect
/// (the contact's own partition fired those), and an event for a contact merged into a foreign one is relayed to
/// that contact's partition instead of being folded.
public struct PartitionHome: Sendable, Equatable {
    public let partitioning: Partitioning
    public let partition: Int

    public init(partitioning: Partitioning, partition: Int) {
        self.partitioning = partitioning
        self.partition = partition
    }

    /// Whether `contact` belongs to another partition.
    public func isForeign(_ contact: String) -> Bool { partitioning.partition(of: contact) != partition }
}
