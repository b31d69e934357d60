import ArgumentParser
import Foundation
import TallyAPI
import TallyClient

/// `tally clock [--at T]`: append a clock event (D1), or show the fold's now with `--show`.
struct Clock: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the fold's now with a clock event (D1), at which awards expire and decay (D2–D4).",
        discussion: """
            The daemon appends one with its wall time every clock_interval; this appends one by hand, for example \
            to apply what is due at a date in a test or a demo. A time earlier than the fold's now changes nothing.
            """)

    @OptionGroup var options: CommonOptions

    @Option(
        help:
            "The clock time: RFC 3339 (2026-03-01T00:00:00Z) or epoch milliseconds; the daemon's wall time when absent."
    )
    var at: String?

    @Flag(help: "Append nothing; show the fold's now and the awards waiting to age.")
    var show = false

    func run() throws {
        let client = try options.adminClient()
        var path = "/v1/clock"
        if !show {
            let time: ClockRequest.Time? = at.map { text in Int64(text).map { .millis($0) } ?? .text(text) }
            let body = try JSONEncoder().encode(ClockRequest(at: time))
            let reply = try client.request("POST", "/v1/clock", body: Array(body), contentType: "application/json")
            guard reply.status == 202 else { throw DaemonError(reply) }
            // Read once the projections have folded it, so that what prints includes what it aged.
            path += "?after=\(try reply.decode(EventReceipt.self).lastSeq ?? 0)"
        }
        let reply = try client.request("GET", path)
        guard reply.status == 200 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let clock = try reply.decode(ClockDocument.self)
        print("now: \(clock.now ?? "(no clock event yet)")")
        print("awards waiting to age: \(clock.aging)" + (clock.nextDue.map { ", the next due at \($0)" } ?? ""))
    }
}
