import Foundation
import TallyAPI
import TallyClient
import Testing

/// The projections' durability from the log (issue 16, A5): they commit without `fdatasync`, survive a process
/// crash, and are folded again from the log after a system crash, which the start tells by the boot id.
@Suite("Projections durable from the log, end to end")
struct ProjectionDurabilityTests {
    static let contacts = (0..<8).map { "dur-\($0)" }

    /// Posts 40 events over ``contacts``; returns the last sequence number.
    static func post(to daemon: Daemon, round: Int) throws -> UInt64 {
        let lines = (0..<40).map { index in
            JSON.event(
                ["email.open", "asset.download", "form.submit"][index % 3], contact: contacts[index % contacts.count],
                item: "guide", id: "dur-\(round)-\(index)")
        }
        let reply = try daemon.post(lines)
        #expect(reply.status == 202)
        return try #require(try reply.receipt.lastSeq)
    }

    /// Every contact's score, read once the projections include `after`.
    static func scores(of daemon: Daemon, after: UInt64) throws -> [String: Int64] {
        var scores: [String: Int64] = [:]
        for contact in contacts {
            scores[contact] = try #require(try daemon.contact(contact, after: after).document).points
        }
        return scores
    }

    /// Leaves a file in the live projections' directory: still there after a restart that kept them, gone once
    /// they were discarded and folded again. Returns its path.
    static func markProjections(_ daemon: Daemon) throws -> String {
        let current = daemon.dataDirectory + "/CURRENT"
        let name =
            (try? String(contentsOfFile: current, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            ?? "projections"
        let path = daemon.dataDirectory + "/\(name)/kept"
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        return path
    }

    static func marker(_ daemon: Daemon) -> String { daemon.dataDirectory + "/UNSYNCED" }

    static func bootID() throws -> String {
        try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(
        "A5: after kill -9 the unsynced projections are kept (the kernel holds their pages) and go on from their checkpoint; a clean stop syncs them and removes UNSYNCED"
    )
    func processCrashKeepsTheProjections() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        let last = try Self.post(to: daemon, round: 1)
        let before = try Self.scores(of: daemon, after: last)
        #expect(before.values.contains { $0 > 0 })
        #expect(try String(contentsOfFile: Self.marker(daemon), encoding: .utf8).contains(try Self.bootID()))
        let sentinel = try Self.markProjections(daemon)
        daemon.crash()
        try daemon.start()
        #expect(FileManager.default.fileExists(atPath: sentinel))
        #expect(!daemon.log.contains("folding them again"))
        #expect(try Self.scores(of: daemon, after: last) == before)
        let more = try Self.post(to: daemon, round: 2)
        _ = try Self.scores(of: daemon, after: more)
        #expect(try daemon.verify().passed)
        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: Self.marker(daemon)))
    }

    @Test(
        "A5: after a system crash (UNSYNCED names another boot) the projections are discarded and folded again from the log, to the same scores; offline verify refuses them meanwhile"
    )
    func systemCrashFoldsThemAgain() throws {
        let daemon = try Daemon(rules: endToEndRules)
        try daemon.start()
        let last = try Self.post(to: daemon, round: 1)
        let before = try Self.scores(of: daemon, after: last)
        let sentinel = try Self.markProjections(daemon)
        daemon.crash()
        // What a power loss leaves: the marker of the run before it, written in an earlier boot.
        try "00000000-0000-4000-8000-000000000000\n".write(
            toFile: Self.marker(daemon), atomically: true, encoding: .utf8)
        let offline = try daemon.run(["verify"])
        #expect(offline.status != 0)
        #expect(offline.error.contains("not synced to disk"))
        try daemon.start()
        #expect(daemon.log.contains("folding them again from the log"))
        #expect(!FileManager.default.fileExists(atPath: sentinel))
        #expect(try Self.scores(of: daemon, after: last) == before)
        #expect(try String(contentsOfFile: Self.marker(daemon), encoding: .utf8).contains(try Self.bootID()))
        #expect(try daemon.verify().passed)
        #expect(daemon.stop() == 0)
    }

    @Test("projections_durability: commit syncs every projection commit and leaves no UNSYNCED, also after kill -9")
    func commitDurability() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: "projections_durability: commit")
        try daemon.start()
        let last = try Self.post(to: daemon, round: 1)
        let before = try Self.scores(of: daemon, after: last)
        #expect(!FileManager.default.fileExists(atPath: Self.marker(daemon)))
        daemon.crash()
        try daemon.start()
        #expect(try Self.scores(of: daemon, after: last) == before)
        #expect(!FileManager.default.fileExists(atPath: Self.marker(daemon)))
        #expect(daemon.stop() == 0)
    }
}
