/// A fixed table of names looked up by their UTF-8 bytes, for the wire names of a closed set of values (event
/// types, the ingest decoder's fields): a lookup compares bytes (SPEC §1: ids and names are bytes, not Unicode
/// text) and makes no `String`. The tables are a few dozen short names, so a scan by length, then bytes, is the
/// fastest lookup.
struct ByteNames<Value: Sendable>: Sendable {
    private let entries: [(value: Value, bytes: [UInt8])]

    /// The table of `values`, each under the name `name` gives it.
    init(_ values: some Sequence<Value>, name: (Value) -> String) {
        entries = values.map { ($0, Array(name($0).utf8)) }
    }

    /// The value named by `bytes`, or nil.
    func value(named bytes: UnsafeRawBufferPointer) -> Value? {
        entries.first(where: { $0.bytes.count == bytes.count && $0.bytes.elementsEqual(bytes) })?.value
    }

    /// The value named by `name`'s UTF-8 bytes, or nil.
    func value(named name: some StringProtocol) -> Value? {
        var text = String(name)
        return text.withUTF8 { value(named: UnsafeRawBufferPointer($0)) }
    }
}
