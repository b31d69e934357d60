/// A `url.hit` pattern (U1): `*` matches any run of characters, everything else is literal, case is ignored.
///
/// When the pattern has no `?`, the URL's query string and fragment are dropped before matching, and a
/// trailing `/` is ignored on both sides. The same matcher decides whether a hit is a *matching hit* for the
/// gate and for counting (U2), unlike Mautic, whose two code paths disagree.
public struct URLPattern: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written in the rules file.
    public let text: String
    private let normalized: [UInt8]
    private let keepsQuery: Bool

    /// Identifies the pattern's page-visit state: equal (as bytes) for patterns that match the same URLs.
    public let key: ByteString

    public init(_ text: String) {
        self.text = text
        self.keepsQuery = text.contains("?")
        self.normalized = Self.normalize(text, dropQuery: false)
        self.key = ByteString(String(decoding: normalized, as: UTF8.self) + (keepsQuery ? "" : " #nq"))
    }

    public var description: String { text }

    /// Whether `url` matches this pattern. An ASCII URL (nearly all) is matched in place, lowercased byte by byte
    /// as it is compared; any other is normalised into a copy first.
    public func matches(_ url: String) -> Bool {
        let inPlace = url.utf8.withContiguousStorageIfAvailable { bytes -> Bool? in
            guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
            var end = bytes.count
            if !keepsQuery, let cut = bytes.firstIndex(where: { $0 == 0x3F || $0 == 0x23 }) { end = cut }
            if end > 0, bytes[end - 1] == 0x2F { end -= 1 }
            return matches(UnsafeBufferPointer(rebasing: bytes[..<end]), lowercasing: true)
        }
        if let inPlace, let result = inPlace { return result }
        return matchesNormalizedCopy(url)
    }

    /// ``matches(_:)`` on a normalised copy of the URL: any URL's path, and the reference the in-place path is
    /// tested against.
    func matchesNormalizedCopy(_ url: String) -> Bool {
        Self.normalize(url, dropQuery: !keepsQuery).withUnsafeBufferPointer { matches($0, lowercasing: false) }
    }

    /// Whether a URL, already cut at its query (when the pattern drops it) and trailing `/`, matches.
    private func matches(_ subject: UnsafeBufferPointer<UInt8>, lowercasing: Bool) -> Bool {
        normalized.withUnsafeBufferPointer { pattern in
            if Self.glob(pattern, subject, lowercasing: lowercasing, slash: false) { return true }
            // `…/blog/*` also matches `…/blog/`, whose trailing slash normalisation removed.
            return pattern.count >= 2 && pattern[pattern.count - 2] == 0x2F && pattern[pattern.count - 1] == 0x2A
                && Self.glob(pattern, subject, lowercasing: lowercasing, slash: true)
        }
    }

    /// Whether the text starts with a URL scheme followed by `://`.
    public static func isAbsolute(_ url: String) -> Bool { isAbsolute(bytes: url.utf8) }

    /// ``isAbsolute(_:)`` of a URL's UTF-8 bytes.
    public static func isAbsolute(bytes url: some Collection<UInt8>) -> Bool {
        guard let first = url.first, (0x41...0x5A).contains(first) || (0x61...0x7A).contains(first) else {
            return false
        }
        var rest = url.dropFirst()
        while let byte = rest.first {
            switch byte {
            case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2B, 0x2D, 0x2E:
                rest = rest.dropFirst()
            case 0x3A:
                return rest.starts(with: "://".utf8)
            default:
                return false
            }
        }
        return false
    }

    private static func normalize(_ text: String, dropQuery: Bool) -> [UInt8] {
        // ASCII (nearly every URL) is lowercased byte by byte; anything else goes through Unicode lowercasing.
        var bytes =
            text.utf8.allSatisfy { $0 < 0x80 }
            ? text.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 } : Array(text.lowercased().utf8)
        if dropQuery, let cut = bytes.firstIndex(where: { $0 == 0x3F || $0 == 0x23 }) {
            bytes.removeSubrange(cut...)
        }
        if bytes.last == 0x2F { bytes.removeLast() }
        return bytes
    }

    /// Wildcard matching with `*` only, linear in practice (classic single-backtrack algorithm); the subject's
    /// ASCII capitals compare as lower case with `lowercasing`, and `slash` appends a `/` to it.
    private static func glob(
        _ pattern: UnsafeBufferPointer<UInt8>, _ subject: UnsafeBufferPointer<UInt8>, lowercasing: Bool, slash: Bool
    ) -> Bool {
        let count = subject.count + (slash ? 1 : 0)
        func byte(_ index: Int) -> UInt8 {
            guard index < subject.count else { return 0x2F }
            let byte = subject[index]
            return lowercasing && (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
        }
        var p = 0
        var s = 0
        var star = -1
        var starMatch = 0
        while s < count {
            if p < pattern.count, pattern[p] == 0x2A {
                star = p
                starMatch = s
                p += 1
            } else if p < pattern.count, pattern[p] == byte(s) {
                p += 1
                s += 1
            } else if star >= 0 {
                p = star + 1
                starMatch += 1
                s = starMatch
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == 0x2A { p += 1 }
        return p == pattern.count
    }
}
