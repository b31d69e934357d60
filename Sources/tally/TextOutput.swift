import Foundation

/// A plain-text table with aligned columns, for the human-readable output of the CLI.
struct TextTable {
    private var rows: [[String]]
    /// Columns aligned to the right (numbers).
    private let rightAligned: Set<Int>

    init(_ header: [String], rightAligned: Set<Int> = []) {
        rows = [header]
        self.rightAligned = rightAligned
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        let count = rows.map(\.count).max() ?? 0
        let widths = (0..<count).map { column in
            rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0
        }
        var output = ""
        for row in rows {
            let cells = row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned.contains(column) ? padding + cell : cell + padding
            }
            output += cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        return output
    }
}

/// Prints an API document as one line of JSON with sorted keys (`--json`).
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// A progress line on a terminal (standard error), redrawn in place: done of total, rate, time left. Silent
/// when standard error is not a terminal.
struct ProgressBar {
    let label: String
    private let start = Date()
    private let enabled = isatty(2) == 1

    init(_ label: String) {
        self.label = label
    }

    func update(done: UInt64, total: UInt64) {
        guard enabled else { return }
        let elapsed = max(Date().timeIntervalSince(start), 0.001)
        let rate = Double(done) / elapsed
        let fraction = total == 0 ? 1 : min(Double(done) / Double(total), 1)
        let filled = Int(fraction * 30)
        let left = rate > 0 && total > done ? Double(total - done) / rate : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: 30 - filled)
        let line = String(
            format: "\r%@ %@ %3.0f%%  %llu/%llu  %.0f/s  %.0fs left ", label, bar, fraction * 100, done, total, rate,
            left)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
