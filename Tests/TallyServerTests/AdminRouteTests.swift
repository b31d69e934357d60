import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TallyAPI
import TallyCore
import TallyEngine
import TallyServer
import TallyStore
import Testing

/// The administrative routes of the admin socket: rules (A3), rebuild (A4), verify (A5), import (M2), backup.
@Suite("Router: admin routes")
struct AdminRouteTests {
    static let rulesV2 = """
        groups: [product]
        actions:
          - { id: download, type: asset.download, delta: 7, repeatable: true }

        """

    @Test("A3 GET /v1/rules lists the versions; PUT /v1/rules publishes one (201); ?version=N shows its text")
    func rulesPublication() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let first = try decode(RulesVersionList.self, try await client.get("/v1/rules"))
                #expect(first.versions.count == 1)
                let v1 = try #require(first.versions.first)
                #expect(v1.version == 1)
                #expect(v1.seq == 1)
                #expect(v1.source == "file \(test.directory)/rules.yaml")
                #expect(v1.inForce)
                #expect(v1.text == nil, "the list carries no texts")
                #expect(Timestamp.parse(v1.publishedAt) != nil, "\(v1.publishedAt)")

                let put = try await client.execute(
                    uri: "/v1/rules?source=tests", method: .put, headers: [.contentType: "application/yaml"],
                    body: ByteBuffer(string: Self.rulesV2))
                #expect(put.status == .created)
                let v2 = try decode(RulesVersionDocument.self, put)
                #expect(v2.version == 2)
                #expect(v2.seq == 2)
                #expect(v2.source == "api: tests")
                #expect(v2.text == nil)
                #expect(await test.engine.projector.projected.wait(forAtLeast: v2.seq, timeout: .seconds(60)))
                let second = try decode(RulesVersionList.self, try await client.get("/v1/rules"))
                #expect(second.versions.map(\.version) == [1, 2])
                #expect(second.versions.map(\.inForce) == [false, true])
                let text = try decode(RulesVersionDocument.self, try await client.get("/v1/rules?version=2"))
                #expect(text.text == Self.rulesV2)
                try expectError(try await client.get("/v1/rules?version=3"), .notFound, containing: "3")
                try expectError(try await client.get("/v1/rules?version=two"), .notFound)
                let unnamed = try await client.execute(
                    uri: "/v1/rules", method: .put, body: ByteBuffer(string: Self.rulesV2))
                #expect(try decode(RulesVersionDocument.self, unnamed).source == "api")
            }
        }
    }

    @Test("A3 PUT /v1/rules: an invalid file is 400 naming its line and publishes nothing")
    func invalidRules() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let head = test.engine.health().logHead
                let bad = "groups: [product]\nactions:\n  - { id: open, type: email.opened, delta: 5 }\n"
                let response = try await client.execute(uri: "/v1/rules", method: .put, body: ByteBuffer(string: bad))
                try expectError(response, .badRequest, line: 3, containing: "email.opened")
                let push = """
                    triggers:
                      - { id: t, min_points: 1, events: [{ id: crm, type: integration.push, integration: crm }] }

                    """
                let unconfigured = try await client.execute(
                    uri: "/v1/rules", method: .put, body: ByteBuffer(string: push))
                try expectError(unconfigured, .badRequest, containing: "integration")
                var binary = ByteBuffer()
                binary.writeBytes([0x61, 0x3A, 0x20, 0xFF, 0xFE, 0x0A])
                try expectError(
                    try await client.execute(uri: "/v1/rules", method: .put, body: binary), .badRequest,
                    containing: "UTF-8")
                #expect(test.engine.health().logHead == head)
                #expect(try decode(RulesVersionList.self, try await client.get("/v1/rules")).versions.count == 1)
            }
        }
    }

    @Test("A4 POST /v1/rebuild?dry_run=true previews a version; POST /v1/rebuild is 202 and GET /v1/rebuild tracks it")
    func rebuild() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                #expect(try decode(RebuildStatus.self, try await client.get("/v1/rebuild")).rebuild == nil)
                _ = try await client.append(
                    """
                    {"type":"asset.download","contact":"c-1","item":"g"}
                    {"type":"asset.download","contact":"c-1","item":"g"}
                    {"type":"asset.download","contact":"c-2","item":"g"}
                    """)
                let put = try await client.execute(
                    uri: "/v1/rules", method: .put, body: ByteBuffer(string: Self.rulesV2))
                let v2 = try decode(RulesVersionDocument.self, put)
                #expect(await test.engine.projector.projected.wait(forAtLeast: v2.seq, timeout: .seconds(60)))

                let same = try await client.execute(uri: "/v1/rebuild?dry_run=true&version=1", method: .post)
                #expect(same.status == .ok)
                let unchanged = try decode(RebuildPreview.self, same)
                #expect(unchanged.dryRun)
                #expect(unchanged.rulesVersion == 1)
                #expect(unchanged.checkpoint == v2.seq)
                #expect(unchanged.contacts == 2)
                #expect(unchanged.changed == 0)
                #expect(unchanged.oldTotal == 30)
                #expect(unchanged.newTotal == 30)

                let preview = try decode(
                    RebuildPreview.self, try await client.execute(uri: "/v1/rebuild?dry_run=1", method: .post))
                #expect(preview.rulesVersion == 2, "the dry run defaults to the version in force")
                #expect(preview.changed == 2)
                #expect(preview.newTotal == 21)
                #expect(
                    preview.changes.sorted { $0.contact < $1.contact }
                        == [
                            .init(contact: "c-1", oldPoints: 20, newPoints: 14, oldGroups: [:], newGroups: [:]),
                            .init(contact: "c-2", oldPoints: 10, newPoints: 7, oldGroups: [:], newGroups: [:]),
                        ])
                #expect(preview.newlyReached == 0)
                #expect(preview.reached.isEmpty)
                #expect(test.engine.health().logHead == v2.seq, "a dry run appends nothing")

                let started = try await client.execute(uri: "/v1/rebuild", method: .post)
                #expect(started.status == .accepted)
                let rebuild = try decode(RebuildStarted.self, started)
                #expect(rebuild.rulesVersion == 2)
                #expect(rebuild.seq == v2.seq + 1)
                // The rebuild runs beside the live projections: `?after=` its seq does not wait for it; GET
                // /v1/rebuild says when it is done.
                // Until the projector folds the rebuild event, GET /v1/rebuild still says `null`.
                var progress = try decode(RebuildStatus.self, try await client.get("/v1/rebuild")).rebuild
                for _ in 0..<6000
                where progress?.seq != rebuild.seq || [.replaying, .switching].contains(progress?.phase) {
                    try await Task.sleep(for: .milliseconds(10))
                    progress = try decode(RebuildStatus.self, try await client.get("/v1/rebuild")).rebuild
                }
                let status = try #require(progress)
                #expect(status.seq == rebuild.seq)
                #expect(status.version == 2)
                #expect(status.phase == .done)
                #expect(status.finishedAt != nil)
                #expect(status.error == nil)
                let contact = try decode(ContactDocument.self, try await client.get("/v1/contacts/c-1"))
                #expect(contact.points == 14)
            }
        }
    }

    @Test("A4 POST /v1/rebuild: a version that is not a number or not published is 400 naming `version`")
    func rebuildBadVersion() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                for query in [
                    "version=two", "version=0", "version=2", "dry_run=true&version=9", "dry_run=true&version=x",
                ] {
                    let response = try await client.execute(uri: "/v1/rebuild?\(query)", method: .post)
                    try expectError(response, .badRequest, field: "version")
                }
                #expect(test.engine.health().logHead == 1)
            }
        }
    }

    @Test("A4 POST /v1/rebuild while a requested rebuild has not finished is 409")
    func rebuildConflict() async throws {
        // The writer runs, the projector does not: the first rebuild stays requested and never starts.
        try await TestEngine.with(running: false) { test in
            test.engine.writer.start()
            do {
                try await test.admin { client in
                    let first = try await client.execute(uri: "/v1/rebuild", method: .post)
                    #expect(first.status == .accepted)
                    let second = try await client.execute(uri: "/v1/rebuild?version=1", method: .post)
                    try expectError(second, .conflict, containing: "already")
                    #expect(test.engine.health().logHead == 2)
                }
            } catch {
                await offThePool { test.engine.writer.stop() }
                throw error
            }
            await offThePool { test.engine.writer.stop() }  // joins the writer thread
        }
    }

    @Test("A5 POST /v1/verify: 200 with the report; the projections equal the replay")
    func verify() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let receipt = try await client.append(
                    """
                    {"type":"asset.download","contact":"c-1","item":"g"}
                    {"type":"form.submit","contact":"c-1","item":"demo"}
                    {"type":"url.hit","contact":"c-2","url":"https://example.com/pricing"}
                    """)
                let after = try #require(receipt.lastSeq)
                #expect(await test.engine.projector.projected.wait(forAtLeast: after, timeout: .seconds(60)))
                let response = try await client.execute(uri: "/v1/verify", method: .post)
                #expect(response.status == .ok)
                let report = try decode(VerifyReport.self, response)
                #expect(report.checkpoint == after)
                #expect(report.differences == [])
                #expect(report.passed)

                // Projections that differ from the replay: still 200, with the difference in words.
                try test.engine.projections.store.update { txn in try txn.setContact("c-1", ContactState(points: 999)) }
                let differing = try await client.execute(uri: "/v1/verify", method: .post)
                #expect(differing.status == .ok)
                let failed = try decode(VerifyReport.self, differing)
                #expect(!failed.passed)
                #expect(failed.differences.contains { $0.contains("c-1") }, "\(failed.differences)")
            }
        }
    }

    @Test("M2 POST /v1/import/points: 202 and the scores are set; a bad line is 400 naming it, nothing imported")
    func importPoints() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                _ = try await client.append(#"{"type":"asset.download","contact":"x","item":"g"}"#)
                let csv = "contact,points,group,email\nx,42,,x@example.com\ny,7,product,\n"
                let response = try await client.execute(
                    uri: "/v1/import/points?file=scores.csv", method: .post, headers: [.contentType: "text/csv"],
                    body: ByteBuffer(string: csv))
                #expect(response.status == .accepted)
                let receipt = try decode(ImportReceipt.self, response)
                #expect(receipt == ImportReceipt(imported: 2, firstSeq: 3, lastSeq: 4))
                let x = try decode(ContactDocument.self, try await client.get("/v1/contacts/x?after=4"))
                #expect(x.points == 42)
                #expect(x.email == "x@example.com")
                #expect(
                    try decode(ContactDocument.self, try await client.get("/v1/contacts/y")).groups == ["product": 7])
                let explain = try decode(ExplainDocument.self, try await client.get("/v1/contacts/x/explain"))
                #expect(explain.entries.last?.kind == "import")
                #expect(explain.entries.last?.delta == 32)

                let head = test.engine.health().logHead
                let bad: [(String, Int, String?)] = [
                    ("contact,points\nx,1\ny,lots\nz,3\n", 3, "points"),
                    ("contact,points,group\nx,1,nope\n", 2, "group"),
                    ("contact,points\n", 2, nil),
                ]
                for (body, line, field) in bad {
                    let rejected = try await client.execute(
                        uri: "/v1/import/points", method: .post, body: ByteBuffer(string: body))
                    try expectError(rejected, .badRequest, line: line, field: field)
                }
                #expect(test.engine.health().logHead == head)
                let spooled = try FileManager.default.contentsOfDirectory(atPath: test.directory + "/data")
                #expect(!spooled.contains { $0.hasPrefix("import-") }, "the spooled uploads are removed: \(spooled)")
            }
        }
    }

    @Test("POST /v1/backup?dir=/abs: 201 with the report; a relative, missing or non-empty dir is refused")
    func backup() async throws {
        try await TestEngine.with { test in
            try await test.admin { client in
                let receipt = try await client.append(#"{"type":"asset.download","contact":"c-1","item":"g"}"#)
                let after = try #require(receipt.lastSeq)
                #expect(await test.engine.projector.projected.wait(forAtLeast: after, timeout: .seconds(60)))
                let target = test.directory + "/backup"
                let response = try await client.execute(uri: "/v1/backup?dir=\(target)", method: .post)
                #expect(response.status == .created)
                let report = try decode(BackupReport.self, response)
                #expect(report.directory == target)
                #expect(report.logHead == after)
                #expect(report.projected == after)
                #expect(report.bytes > 0)
                #expect(FileManager.default.fileExists(atPath: target + "/log/data.mdb"))
                #expect(FileManager.default.fileExists(atPath: target + "/projections/data.mdb"))

                try expectError(
                    try await client.execute(uri: "/v1/backup?dir=\(target)", method: .post), .conflict, field: "dir")
                try expectError(
                    try await client.execute(uri: "/v1/backup?dir=relative/dir", method: .post), .badRequest,
                    field: "dir")
                try expectError(try await client.execute(uri: "/v1/backup", method: .post), .badRequest, field: "dir")
            }
        }
    }
}
