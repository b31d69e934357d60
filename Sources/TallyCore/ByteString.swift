/// A string compared, hashed and ordered by its UTF-8 bytes: the identity of ids, items, sessions and URLs
/// (SPEC §1: they are byte strings).
///
/// Swift's `String` equality, hashing and `<` follow Unicode canonical equivalence: `"café"` written with U+00E9
/// and `"cafe\u{301}"` are one `Dictionary` key, while LMDB, which keys the stored projections, sees two. Every
/// in-memory table of the fold keyed by such a string uses this type, so that a batch (one dictionary) and two
/// batches (two LMDB reads) agree. Wrapping costs nothing: it holds the string itself.
public struct ByteString: Sendable, Hashable, Comparable, CustomStringConvertible, ExpressibleByStringInterpolation {
    /// The string; its UTF-8 bytes are its identity.
    public let string: String

    public init(_ string: String) {
        self.string = string
    }

    public init(stringLiteral value: String) {
        self.string = value
    }

    public var description: String { string }

    /// Byte equality.
    public static func == (a: ByteString, b: ByteString) -> Bool {
        ByteString.equal(a.string, b.string)
    }

    /// Whether two strings have the same UTF-8 bytes (not Swift's canonical equivalence).
    @inlinable
    public static func equal(_ a: String, _ b: String) -> Bool {
        let (x, y) = (a.utf8, b.utf8)
        guard x.count == y.count else { return false }
        let fast = x.withContiguousStorageIfAvailable { p in
            y.withContiguousStorageIfAvailable { q in p.elementsEqual(q) }
        }
        return (fast ?? nil) ?? x.elementsEqual(y)
    }

    public func hash(into hasher: inout Hasher) {
        ByteString.hash(string, into: &hasher)
    }

    /// Hashes a string's UTF-8 bytes, then their count (so that consecutive strings of a compound key cannot
    /// shift bytes between each other).
    @inlinable
    public static func hash(_ string: String, into hasher: inout Hasher) {
        let utf8 = string.utf8
        if utf8.withContiguousStorageIfAvailable({ hasher.combine(bytes: UnsafeRawBufferPointer($0)) }) == nil {
            for byte in utf8 { hasher.combine(byte) }
        }
        hasher.combine(utf8.count)
    }

    /// Byte order: the order of LMDB's keys, a strict total order (String's `<` is not, on byte strings).
    public static func < (a: ByteString, b: ByteString) -> Bool {
        ByteString.precedes(a.string, b.string)
    }

    /// Whether `a`'s UTF-8 bytes precede `b`'s lexicographically.
    @inlinable
    public static func precedes(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { p in
            b.utf8.withContiguousStorageIfAvailable { q in p.lexicographicallyPrecedes(q) }
        }
        return (fast ?? nil) ?? a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
