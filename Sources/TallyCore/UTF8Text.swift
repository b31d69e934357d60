/// Strict UTF-8 decoding for the hot paths (the ingest decoder, the binary log and the CSV reader).
public enum UTF8Text {
    /// The bytes as a string, or nil when they are not valid UTF-8.
    ///
    /// Faster than the generic `String(validating:as:)`, which instantiates generic metadata on every call:
    /// decoding with repair and comparing is exact, because a repair always changes the bytes, and ASCII (the
    /// common case) needs no comparison.
    public static func string(_ bytes: UnsafeRawBufferPointer) -> String? {
        string(bytes.assumingMemoryBound(to: UInt8.self))
    }

    /// See ``string(_:)-(UnsafeRawBufferPointer)``.
    public static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let value = String(decoding: bytes, as: UTF8.self)
        guard let base = bytes.baseAddress else { return value }
        var index = 0
        while index < bytes.count, base[index] < 0x80 { index += 1 }
        return index == bytes.count || value.utf8.elementsEqual(bytes) ? value : nil
    }

    /// Whether the bytes are valid UTF-8, without making a `String` of ASCII (the common case).
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        while index < bytes.count, bytes[index] < 0x80 { index += 1 }
        return index == bytes.count || string(bytes) != nil
    }
}
