// libFuzzer target: the streaming points-import CSV reader (SPEC M2). Built and run by scripts/fuzz.
//
// The input is the CSV; the chunk sizes come from a hash of it, so that every input is also a different
// chunking. The rows and the error must not depend on the chunking.
import TallyCore

private let groups: Set<String> = ["sales", "beta", "product"]

@_cdecl("LLVMFuzzerTestOneInput")
public func pointsCSVFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = read(bytes, chunks: [bytes.count])
    check(whole, bytes)
    var random = SplitMix64(seed: bytes.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
    let chunkings: [[Int]] = [
        [1],
        (0..<8).map { _ in Int(random.next() % 4) },  // tiny chunks, empty ones included
        (0..<8).map { _ in Int(random.next() % 64) },
        (0..<8).map { _ in Int(random.next() % 9000) },  // across the 4096-byte field limit
    ]
    for chunks in chunkings {
        let outcome = read(bytes, chunks: chunks)
        guard outcome == whole else {
            fatalError("points-csv: chunks \(chunks) give \(outcome), all at once \(whole)")
        }
    }
    return 0
}

/// The rows read, and the error that stopped the reading.
private struct Outcome: Equatable, CustomStringConvertible {
    var rows: [PointsImportRow] = []
    var error: PointsCSVError?

    var description: String { "\(rows.count) rows, error: \(error.map(String.init(describing:)) ?? "none")" }
}

/// Feeds `bytes` in chunks of the given sizes, cycling through them (a size of 0 is an empty feed).
private func read(_ bytes: [UInt8], chunks: [Int]) -> Outcome {
    var reader = PointsCSVReader(knownGroups: groups)
    var outcome = Outcome()
    do {
        var start = 0
        var turn = 0
        var emptyFeeds = 0
        while start < bytes.count {
            var size = chunks[turn % chunks.count]
            turn += 1
            if size == 0 {
                // A few empty feeds, then one byte at a time so that an all-zero chunking ends.
                if emptyFeeds < 8 { emptyFeeds += 1 } else { size = 1 }
            }
            let end = min(start + size, bytes.count)
            try reader.feed(bytes[start..<end]) { outcome.rows.append($0) }
            start = end
        }
        try reader.finish { outcome.rows.append($0) }
        guard reader.rows == outcome.rows.count else { fatalError("points-csv: rows counter \(reader.rows)") }
    } catch let error as PointsCSVError {
        outcome.error = error
        // Once failed, the reader keeps failing the same way.
        do {
            try reader.feed([0x61]) { _ in fatalError("points-csv: a row after an error") }
            fatalError("points-csv: feed after an error did not throw")
        } catch let again as PointsCSVError {
            guard again == error else { fatalError("points-csv: error \(error) became \(again)") }
        } catch {
            fatalError("points-csv: unexpected error \(error)")
        }
    } catch {
        fatalError("points-csv: unexpected error type \(error)")
    }
    return outcome
}

/// What every row and error must satisfy.
private func check(_ outcome: Outcome, _ bytes: [UInt8]) {
    let lines = bytes.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
    var previous = 1
    for row in outcome.rows {
        guard row.line > previous, row.line <= lines else {
            fatalError("points-csv: row on line \(row.line) after line \(previous), \(lines) lines")
        }
        previous = row.line
        guard EventLimits.contact.contains(row.contact.utf8.count) else { fatalError("points-csv: contact size") }
        guard row.group.map(groups.contains) ?? true else { fatalError("points-csv: unknown group \(row)") }
        guard row.email.map(EmailAddress.isValid) ?? true else { fatalError("points-csv: invalid email \(row)") }
    }
    if let error = outcome.error {
        guard (1...lines).contains(error.line), error.line >= previous else {
            fatalError("points-csv: error on line \(error.line) of \(lines), after a row on line \(previous)")
        }
    }
}
