import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TallyAPI
import TallyEngine
import TallyServer
import Testing

/// The JSON names on the wire, pinned against SPEC §7 and Docs/api.md: the router tests decode with the same
/// TallyAPI types the server encodes with, so a changed `CodingKey` would pass them; these would not.
@Suite("Router: wire names")
struct WireNameTests {
    static func keys(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) -> Set<String> {
        let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
        guard let dictionary = object as? [String: Any] else {
            Issue.record("not a JSON object: \(String(buffer: response.body))", sourceLocation: sourceLocation)
            return []
        }
        return Set(dictionary.keys)
    }

    static func object(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
    }

    @Test("S6 receipts, health, contacts, explain and errors use the snake_case names of SPEC §7")
    func behaviourAndContactDocuments() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let receipt = try await client.postEvents(
                    #"{"type":"form.submit","contact":"c-1","item":"demo","id":"e-1"}"#)
                #expect(Self.keys(receipt) == ["accepted", "duplicates", "first_seq", "last_seq"])
                #expect(Self.keys(try await client.get("/health")) == ["status", "log_head", "projected"])
                _ = try await client.send(
                    .post, "/v1/contacts/c-1", json: #"{"email":"a@example.com","owner_email":"b@example.com"}"#)
                let contact = try await client.get("/v1/contacts/c-1?after=3")
                #expect(
                    Self.keys(contact)
                        == [
                            "contact", "points", "groups", "tags", "segments", "campaigns", "triggers", "email",
                            "owner_email", "fields",
                        ])
                #expect(Self.keys(try await client.get("/v1/contacts/c-1?at=\(Int64.max)")).contains("at"))
                let explain = try await client.get("/v1/contacts/c-1/explain")
                #expect(
                    Self.keys(explain) == [
                        "contact", "points", "groups", "by_action", "actions", "entries", "entries_total",
                    ])
                let entry = (Self.object(explain)["entries"] as? [[String: Any]])?.first ?? [:]
                #expect(
                    Set(entry.keys)
                        == [
                            "seq", "id", "at", "action", "kind", "rules_version", "group", "delta", "score_after",
                            "reason",
                        ])
                let error = try await client.postEvents(#"{"type":"form.submit"}"#)
                #expect(Self.keys(error) == ["error"])
                #expect(
                    Set((Self.object(error)["error"] as? [String: Any] ?? [:]).keys) == [
                        "status", "message", "line", "field",
                    ])
                let imported = try await client.execute(
                    uri: "/v1/import/points", method: .post, body: ByteBuffer(string: "contact,points\nx,1\n"))
                #expect(Self.keys(imported) == ["imported", "first_seq", "last_seq"])
            }
        }
    }

    @Test("A3 A4 A5 rules, rebuild, verify and backup documents use the snake_case names of Docs/api.md")
    func adminDocuments() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let rules = Self.object(try await client.get("/v1/rules"))
                let version = (rules["versions"] as? [[String: Any]])?.first ?? [:]
                #expect(Set(version.keys) == ["version", "seq", "published_at", "source", "in_force"])
                #expect(Self.keys(try await client.get("/v1/rules?version=1")).contains("text"))
                #expect(Self.keys(try await client.get("/v1/rebuild")) == ["rebuild"])
                #expect(String(buffer: try await client.get("/v1/rebuild").body).contains(#""rebuild":null"#))
                let preview = try await client.execute(uri: "/v1/rebuild?dry_run=true", method: .post)
                #expect(
                    Self.keys(preview)
                        == [
                            "dry_run", "rules_version", "checkpoint", "contacts", "changed", "old_total", "new_total",
                            "changes", "newly_reached", "reached",
                        ])
                #expect(
                    Self.keys(try await client.execute(uri: "/v1/verify", method: .post)) == [
                        "checkpoint", "differences",
                    ])
                let backup = try await client.execute(uri: "/v1/backup?dir=\(test.directory)/copy", method: .post)
                #expect(Self.keys(backup) == ["directory", "log_head", "projected", "bytes"])
                let started = try await client.execute(uri: "/v1/rebuild", method: .post)
                #expect(Self.keys(started) == ["seq", "rules_version"])
                let startedSeq = (Self.object(started)["seq"] as? Int).map(UInt64.init) ?? 0
                var progress: [String: Any] = [:]
                for _ in 0..<6000 {
                    progress = Self.object(try await client.get("/v1/rebuild"))["rebuild"] as? [String: Any] ?? [:]
                    if (progress["seq"] as? Int).map(UInt64.init) == startedSeq, progress["finished_at"] != nil {
                        break
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(
                    Set(progress.keys)
                        == [
                            "seq", "version", "phase", "replayed", "total", "started_at", "finished_at", "requested_at",
                        ])
            }
        }
    }
}
