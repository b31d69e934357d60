import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Searches files for byte strings: what an erasure checks is gone from the data directory (I8).
public enum ResidueScan {
    /// The files under `directory` (recursively) that contain any of `needles`, with the needle found.
    public static func files(under directory: String, containing needles: [[UInt8]]) -> [(path: String, needle: String)]
    {
        let needles = needles.filter { !$0.isEmpty }
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        var found: [(String, String)] = []
        let longest = needles.map(\.count).max() ?? 0
        for case let relative as String in walker {
            let path = directory + "/" + relative
            guard let handle = FileHandle(forReadingAtPath: path) else { continue }
            defer { try? handle.close() }
            var carry: [UInt8] = []
            var hit: [UInt8]?
            while hit == nil, let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                let window = carry + chunk
                hit = needles.first { needle in Self.contains(window, needle) }
                carry = Array(window.suffix(max(longest - 1, 0)))
            }
            if let hit { found.append((path, String(decoding: hit, as: UTF8.self))) }
        }
        return found
    }

    /// Whether `needle` occurs in `haystack`: `memchr` for its first byte, `memcmp` for the rest (the data directory
    /// can be gigabytes).
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, needle.count <= haystack.count else { return needle.isEmpty }
        return haystack.withUnsafeBytes { hay in
            needle.withUnsafeBytes { pin in
                guard let base = hay.baseAddress, let pattern = pin.baseAddress else { return false }
                var offset = 0
                let last = hay.count - pin.count
                while offset <= last {
                    guard let found = memchr(base + offset, Int32(first), last - offset + 1) else { return false }
                    let position = base.distance(to: UnsafeRawPointer(found))
                    if memcmp(base + position, pattern, pin.count) == 0 { return true }
                    offset = position + 1
                }
                return false
            }
        }
    }
}
