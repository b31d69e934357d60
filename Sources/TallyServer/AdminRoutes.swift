import Foundation
import Hummingbird
import TallyCore
import TallyEngine
import TallyStore

/// The audit, rules, rebuild and verify endpoints of the admin socket (SPEC §5, §6).
extension Routes {
    struct ExplainEntry: Encodable {
        var seq: UInt64
        var id: String?
        var at: String
        var action: String
        var kind: String
        var rules_version: Int64
        var group: String?
        var delta: Int64
        var score_after: Int64
        var reason: String

        init(_ entry: AuditEntry) {
            seq = entry.seq
            id = entry.eventID
            at = Timestamp.format(entry.at)
            action = entry.action
            kind =
                switch entry.kind {
                case .action: "action"
                case .manual: "manual"
                case .imported: "import"
                }
            rules_version = entry.version
            group = entry.group
            delta = entry.delta
            score_after = entry.scoreAfter
            reason = entry.reason
        }
    }

    struct ExplainBody: Encodable {
        struct ActionSum: Encodable {
            var action: String
            var points: Int64
        }

        var contact: String
        var points: Int64
        var groups: [String: Int64]
        /// Sums of the main score's deltas by action.
        var by_action: [String: Int64]
        /// The same in order of first appearance, for tables.
        var actions: [ActionSum]
        /// The newest `limit` entries, in log order.
        var entries: [ExplainEntry]
        /// Every entry counted in the sums; more than `entries` holds when the limit cut the oldest off.
        var entries_total: Int
        var at: String?
    }

    /// `GET /v1/contacts/{id}/explain[?at=T][&limit=N]` (A2): the sums by action and the scores over every audit
    /// entry, and the newest N entries (10,000 by default) in log order.
    func explain(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        try await awaitProjection(request)
        let asOf = try Self.asOf(request)
        var limit = Explanation.defaultLimit
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(text), (0...Explanation.maximumLimit).contains(value) else {
                throw APIError(
                    .badRequest, "\"limit\" must be an integer from 0 to \(Explanation.maximumLimit)", field: "limit")
            }
            limit = value
        }
        guard let (state, explanation) = try engine.explain(contact: id, asOf: asOf, limit: limit) else {
            throw APIError(.notFound, "unknown contact \"\(id)\"")
        }
        return JSONResponse.make(
            ExplainBody(
                contact: id, points: asOf == nil ? state.points : explanation.points,
                groups: asOf == nil ? state.groups : explanation.groups,
                by_action: Dictionary(explanation.byAction.map { ($0.action, $0.points) }, uniquingKeysWith: +),
                actions: explanation.byAction.map { .init(action: $0.action, points: $0.points) },
                entries: explanation.entries.map(ExplainEntry.init), entries_total: explanation.total,
                at: asOf.map(Timestamp.format)))
    }

    struct PointsChange: Decodable {
        var op: String
        var value: Int64
        var group: String?
        var reason: String?

        enum CodingKeys: String, CodingKey { case op, value, group, reason }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            op = try container.decode(String.self, forKey: .op)
            do {
                value = try container.decode(Int64.self, forKey: .value)
            } catch DecodingError.keyNotFound(let key, let context) {
                throw DecodingError.keyNotFound(key, context)
            } catch {
                throw APIError(
                    .badRequest, "\"value\" must be an integer within the 64-bit score range (±9223372036854775807)",
                    field: "value")
            }
            group = try container.decodeIfPresent(String.self, forKey: .group)
            reason = try container.decodeIfPresent(String.self, forKey: .reason)
        }
    }

    /// `POST /v1/contacts/{id}/points` `{"op", "value", "group"?, "reason"?}` (M1).
    func changePoints(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        var request = request
        let body = try await request.collectBody(upTo: 64 << 10)
        let change: PointsChange
        do {
            change = try JSONDecoder().decode(PointsChange.self, from: Data(buffer: body))
        } catch let error as APIError {
            throw error
        } catch DecodingError.keyNotFound(let key, _) {
            throw APIError(.badRequest, "\"\(key.stringValue)\" is required", field: key.stringValue)
        } catch DecodingError.typeMismatch(_, let context), DecodingError.dataCorrupted(let context) {
            let field = context.codingPath.last?.stringValue
            guard let field else { throw APIError(.badRequest, "the body is not a JSON object") }
            let message =
                field == "value"
                ? "\"value\" must be an integer within the 64-bit score range (±9223372036854775807)"
                : "\"\(field)\" must be a string"
            throw APIError(.badRequest, message, field: field)
        } catch {
            throw APIError(.badRequest, "expected a JSON object {\"op\", \"value\", \"group\"?, \"reason\"?}")
        }
        guard let operation = PointsOperation(name: change.op) else {
            throw APIError(.badRequest, "\"op\" must be plus, minus, times, divide or set", field: "op")
        }
        do {
            return try await appending {
                try await engine.changePoints(
                    contact: id, operation: operation, value: change.value, group: change.group,
                    reason: change.reason)
            }
        } catch let error as AdminRequestError {
            throw APIError(error)
        }
    }

    struct RulesVersionBody: Encodable {
        var version: Int64
        var seq: UInt64
        var published_at: String
        var source: String
        var in_force: Bool
        var text: String?

        init(_ info: RulesVersionInfo, inForce: Int64, withText: Bool) {
            version = info.version
            seq = info.seq
            published_at = Timestamp.format(info.publishedAt)
            source = info.source
            in_force = info.version == inForce
            text = withText ? info.text : nil
        }
    }

    /// `GET /v1/rules[?version=N]`: the published versions (A3), or one version with its text.
    func listRules(_ request: Request) throws -> Response {
        let versions = try engine.rulesVersions()
        let inForce = engine.projector.rules.scorer.version
        if let text = request.uri.queryParameters["version"] {
            guard let number = Int64(text), let info = versions.first(where: { $0.version == number }) else {
                throw APIError(.notFound, "no rules version \(text)")
            }
            return JSONResponse.make(RulesVersionBody(info, inForce: inForce, withText: true))
        }
        return JSONResponse.make([
            "versions": versions.map { RulesVersionBody($0, inForce: inForce, withText: false) }
        ])
    }

    /// `PUT /v1/rules[?source=NAME]` with the YAML as body: validates and publishes a version (A3).
    func publishRules(_ request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: TallyEngine.maximumRulesBytes)
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            throw APIError(.badRequest, "the rules file is not UTF-8")
        }
        let source = request.uri.queryParameters["source"].map { "api: \($0)" } ?? "api"
        do {
            let info = try await engine.publishRules(text: text, source: String(source))
            return JSONResponse.make(
                RulesVersionBody(info, inForce: engine.projector.rules.scorer.version, withText: false),
                status: .created)
        } catch let error as AdminRequestError {
            throw APIError(error)
        }
    }

    struct RebuildStarted: Encodable {
        var seq: UInt64
        var rules_version: Int64
    }

    struct PreviewBody: Encodable {
        struct Change: Encodable {
            var contact: String
            var old_points: Int64
            var new_points: Int64
            var old_groups: [String: Int64]
            var new_groups: [String: Int64]
        }

        struct Reached: Encodable {
            var contact: String
            var triggers: [String]
        }

        var dry_run = true
        var rules_version: Int64
        var checkpoint: UInt64
        var contacts: Int
        var changed: Int
        var old_total: Int64
        var new_total: Int64
        var changes: [Change]
        var newly_reached: Int
        var reached: [Reached]
    }

    /// `POST /v1/rebuild[?dry_run=true][&version=N]` (A4): appends a rebuild event (202), or previews one.
    func rebuild(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var requested: Int64?
        if let text = query["version"] {
            guard let number = Int64(text) else {
                throw APIError(.badRequest, "\"version\" must be a number", field: "version")
            }
            requested = number
        }
        let version = requested
        do {
            if query["dry_run"] == "true" || query["dry_run"] == "1" {
                let engine = engine
                let number = try version ?? engine.versionInForce()
                let preview = try await offThePool { try engine.previewRebuild(version: number) }
                return JSONResponse.make(
                    PreviewBody(
                        rules_version: number, checkpoint: preview.checkpoint, contacts: preview.contacts,
                        changed: preview.changedCount, old_total: preview.oldTotal, new_total: preview.newTotal,
                        changes: preview.changes.map {
                            .init(
                                contact: $0.contact, old_points: $0.oldPoints, new_points: $0.newPoints,
                                old_groups: $0.oldGroups, new_groups: $0.newGroups)
                        },
                        newly_reached: preview.newlyReachedCount,
                        reached: preview.newlyReached.map { .init(contact: $0.contact, triggers: $0.fired) }))
            }
            let (seq, number) = try await engine.requestRebuild(version: version)
            return JSONResponse.make(RebuildStarted(seq: seq, rules_version: number), status: .accepted)
        } catch let error as AdminRequestError {
            throw APIError(error)
        }
    }

    /// `POST /v1/backup?dir=/absolute/path`: a hot, compacted copy of the log and the projections.
    func backup(_ request: Request) async throws -> Response {
        guard let directory = request.uri.queryParameters["dir"].map(String.init) else {
            throw APIError(.badRequest, "give the backup directory as ?dir=/absolute/path", field: "dir")
        }
        let engine = engine
        do {
            return JSONResponse.make(try await offThePool { try engine.backup(to: directory) }, status: .created)
        } catch let error as AdminRequestError {
            throw APIError(error)
        }
    }

    /// `GET /v1/rebuild`: the rebuild in progress or last finished.
    func rebuildProgress() -> Response {
        guard let progress = engine.projector.rebuildProgress else {
            return JSONResponse.make(["rebuild": String?.none])
        }
        return JSONResponse.make(["rebuild": progress])
    }

    /// `POST /v1/verify` (A5): replays the log and compares; 200 with the report whatever the outcome.
    func verify() async throws -> Response {
        let engine = engine
        return JSONResponse.make(try await offThePool { try engine.verify() })
    }

}

extension APIError {
    init(_ error: AdminRequestError) {
        let status: HTTPResponse.Status =
            switch error.kind {
            case .invalid: .badRequest
            case .conflict: .conflict
            case .notFound: .notFound
            }
        self.init(status, error.message, line: error.line, field: error.field)
    }
}

extension Routes {
    struct ImportReceipt: Encodable {
        var imported: Int
        var first_seq: UInt64?
        var last_seq: UInt64?
    }

    /// `POST /v1/import/points[?file=NAME]` with a CSV body (M2): the body is spooled to a file in the data
    /// directory as it streams in, validated in full, then imported in one transaction.
    func importPoints(_ request: Request) async throws -> Response {
        let name = request.uri.queryParameters["file"].map(String.init) ?? "an upload"
        let path = engine.configuration.dataDirectory + "/import-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).csv"
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let spool = FileHandle(forWritingAtPath: path)
        else { throw APIError(.serviceUnavailable, "cannot spool the upload in the data directory") }
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            for try await buffer in request.body {
                try spool.write(contentsOf: buffer.readableBytesView)
            }
            try spool.close()
        } catch {
            try? spool.close()
            throw APIError(.serviceUnavailable, "cannot spool the upload: \(error)")
        }
        do {
            let engine = engine
            let receipt = try await engine.importPoints(file: path, name: name)
            return JSONResponse.make(
                ImportReceipt(imported: receipt.accepted, first_seq: receipt.firstSeq, last_seq: receipt.lastSeq),
                status: .accepted)
        } catch let error as AdminRequestError {
            throw APIError(error)
        } catch let error as AppendError {
            throw APIError(.serviceUnavailable, error.description)
        }
    }
}
