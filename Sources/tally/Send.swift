import ArgumentParser
import Foundation
import TallyAPI
import TallyClient

/// `tally send [FILE]`: posts NDJSON events from a file or standard input.
struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post NDJSON events (one JSON object per line) from FILE or standard input.")

    @OptionGroup var options: CommonOptions

    @Argument(help: "An NDJSON file; standard input when absent.")
    var file: String?

    @Option(help: "Events per request.")
    var batch = 10_000

    func run() throws {
        let client = try options.adminClient()
        let handle: FileHandle
        if let file {
            guard let opened = FileHandle(forReadingAtPath: file) else {
                throw ValidationError("cannot open \(file)")
            }
            handle = opened
        } else {
            handle = FileHandle.standardInput
        }
        var totals = (accepted: 0, duplicates: 0, first: UInt64?.none, last: UInt64?.none)
        var lineNumber = 0
        var chunk: [UInt8] = []
        var chunkLines = 0
        var chunkStart = 1

        func flush() throws {
            guard chunkLines > 0 else { return }
            let reply = try client.request("POST", "/v1/events", body: chunk, contentType: "application/x-ndjson")
            guard reply.status == 202 else {
                var error = DaemonError(reply)
                if let detail = (try? reply.decode(ErrorDocument.self))?.error, let line = detail.line {
                    error.message = "line \(chunkStart + line - 1): " + detail.message
                }
                throw error
            }
            let receipt = try reply.decode(EventReceipt.self)
            totals.accepted += receipt.accepted
            totals.duplicates += receipt.duplicates
            if let first = receipt.firstSeq { totals.first = totals.first ?? first }
            if let last = receipt.lastSeq { totals.last = last }
            chunk.removeAll(keepingCapacity: true)
            chunkLines = 0
        }

        var pending: [UInt8] = []
        while true {
            let data = handle.readData(ofLength: 1 << 20)
            pending.append(contentsOf: data)
            while let newline = pending.firstIndex(of: 10) {
                lineNumber += 1
                if chunkLines == 0 { chunkStart = lineNumber }
                chunk.append(contentsOf: pending[...newline])
                chunkLines += 1
                pending.removeSubrange(...newline)
                if chunkLines >= batch { try flush() }
            }
            if data.isEmpty { break }
        }
        if !pending.isEmpty {
            lineNumber += 1
            if chunkLines == 0 { chunkStart = lineNumber }
            chunk.append(contentsOf: pending)
            chunk.append(10)
            chunkLines += 1
        }
        try flush()
        if options.json {
            try printJSON(
                EventReceipt(
                    accepted: totals.accepted, duplicates: totals.duplicates, firstSeq: totals.first,
                    lastSeq: totals.last))
        } else {
            let range = totals.first.map { "seq \($0)–\(totals.last ?? $0)" } ?? "no new events"
            print("accepted \(totals.accepted), duplicates \(totals.duplicates), \(range)")
        }
    }
}
