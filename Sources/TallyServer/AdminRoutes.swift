import Foundation
import Hummingbird
import TallyAPI
import TallyCore
import TallyEngine

/// The audit, rules, rebuild and verify endpoints of the admin socket (SPEC §5, §6).
extension Routes {
    /// `GET /v1/contacts/{id}/explain[?at=T][&limit=N]` (A2): the sums by action and the scores over every audit
    /// entry, and the newest N entries (10,000 by default) in log order.
    func explain(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        try await awaitProjection(request)
        let asOf = try Self.asOf(request)
        let limit = try Self.explainLimit(request)
        guard let (contact, explanation) = try await engine.explain(contact: id, asOf: asOf, limit: limit) else {
            throw APIError(.notFound, "unknown contact \"\(id)\"")
        }
        return JSONResponse.make(ExplainDocument(contact, explanation, asOf: asOf))
    }

    /// Explain's `?limit=N`: the newest entries it lists (default ``Explanation/defaultLimit``).
    static func explainLimit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters["limit"] else { return Explanation.defaultLimit }
        guard let value = Int(text), (0...Explanation.maximumLimit).contains(value) else {
            throw APIError(
                .badRequest, "\"limit\" must be an integer from 0 to \(Explanation.maximumLimit)", field: "limit")
        }
        return value
    }

    /// `POST /v1/contacts/{id}/points` `{"op", "value", "group"?, "reason"?}` (M1).
    func changePoints(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        let (operation, change) = try await Self.pointsChange(request)
        let receipt = try await engine.changePoints(
            contact: id, operation: operation, value: change.value, group: change.group, reason: change.reason)
        return Self.accepted(receipt)
    }

    /// The body of `POST /v1/contacts/{id}/points`, read and checked for its form.
    static func pointsChange(_ request: Request) async throws -> (PointsOperation, PointsChangeRequest) {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 10)
        let change: PointsChangeRequest
        do {
            change = try JSONDecoder().decode(PointsChangeRequest.self, from: Data(buffer: body))
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
        return (operation, change)
    }

    /// `GET /v1/rules[?version=N]`: the published versions (A3), or one version with its text.
    func listRules(_ request: Request) throws -> Response {
        try Self.rulesList(request, versions: try engine.rulesVersions(), inForce: engine.versionFolded)
    }

    /// The answer to `GET /v1/rules[?version=N]` given the versions and the one in force.
    static func rulesList(_ request: Request, versions: [RulesVersionInfo], inForce: Int64) throws -> Response {
        if let text = request.uri.queryParameters["version"] {
            guard let number = Int64(text), let info = versions.first(where: { $0.version == number }) else {
                throw APIError(.notFound, "no rules version \(text)")
            }
            return JSONResponse.make(RulesVersionDocument(info, inForce: inForce, withText: true))
        }
        return JSONResponse.make(
            RulesVersionList(versions: versions.map { RulesVersionDocument($0, inForce: inForce, withText: false) }))
    }

    /// `PUT /v1/rules[?source=NAME]` with the YAML as body: validates and publishes a version (A3).
    func publishRules(_ request: Request) async throws -> Response {
        let (text, source) = try await Self.rulesPublication(request)
        let info = try await engine.publishRules(text: text, source: source)
        return JSONResponse.make(
            RulesVersionDocument(info, inForce: engine.versionFolded, withText: false), status: .created)
    }

    /// The rules text of a `PUT /v1/rules[?source=NAME]` and the source it is published as.
    static func rulesPublication(_ request: Request) async throws -> (text: String, source: String) {
        var request = request
        let body = try await request.collectBody(upTo: TallyEngine.maximumRulesBytes)
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            throw APIError(.badRequest, "the rules file is not UTF-8")
        }
        return (text, String(request.uri.queryParameters["source"].map { "api: \($0)" } ?? "api"))
    }

    /// `?version=N` of the rules routes; nil without one.
    static func rulesVersion(_ request: Request) throws -> Int64? {
        guard let text = request.uri.queryParameters["version"] else { return nil }
        guard let number = Int64(text) else {
            throw APIError(.badRequest, "\"version\" must be a number", field: "version")
        }
        return number
    }

    /// Whether a request asks for a dry run (`?dry_run=true`).
    static func isDryRun(_ request: Request) -> Bool {
        let value = request.uri.queryParameters["dry_run"]
        return value == "true" || value == "1"
    }

    /// `POST /v1/rebuild[?dry_run=true][&version=N]` (A4): appends a rebuild event (202), or previews one.
    func rebuild(_ request: Request) async throws -> Response {
        let requested = try Self.rulesVersion(request)
        if Self.isDryRun(request) {
            let number = try requested ?? engine.versionInForce()
            return JSONResponse.make(RebuildPreview(try await engine.previewRebuild(version: number), version: number))
        }
        let (seq, number) = try await engine.requestRebuild(version: requested)
        return JSONResponse.make(RebuildStarted(seq: seq, rulesVersion: number), status: .accepted)
    }

    /// `POST /v1/backup?dir=/absolute/path`: a hot, compacted copy of the log and the projections.
    func backup(_ request: Request) async throws -> Response {
        guard let directory = request.uri.queryParameters["dir"].map(String.init) else {
            throw APIError(.badRequest, "give the backup directory as ?dir=/absolute/path", field: "dir")
        }
        return JSONResponse.make(try await engine.backup(to: directory), status: .created)
    }

    /// `GET /v1/rebuild`: the rebuild in progress or last finished.
    func rebuildProgress() -> Response {
        JSONResponse.make(RebuildStatus(rebuild: engine.rebuildProgress))
    }

    /// `POST /v1/verify` (A5): replays the log and compares; 200 with the report whatever the outcome.
    func verify() async throws -> Response {
        JSONResponse.make(try await engine.verify())
    }

}

extension Routes {
    /// `POST /v1/import/points[?file=NAME]` with a CSV body (M2): the body is spooled to a file in the data
    /// directory as it streams in, validated in full, then imported in one transaction.
    func importPoints(_ request: Request) async throws -> Response {
        try await Self.spooled(request, in: engine.configuration.dataDirectory) { path, name in
            let receipt = try await engine.importPoints(file: path, name: name)
            return JSONResponse.make(
                ImportReceipt(imported: receipt.accepted, firstSeq: receipt.firstSeq, lastSeq: receipt.lastSeq),
                status: .accepted)
        }
    }

    /// Spools an upload (`?file=NAME` names it) to a file in `directory` as it streams in, runs `body` with the
    /// file's path and the name, and removes the file.
    static func spooled(
        _ request: Request, in directory: String, _ body: (_ path: String, _ name: String) async throws -> Response
    ) async throws -> Response {
        let name = request.uri.queryParameters["file"].map(String.init) ?? "an upload"
        let path = directory + "/import-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).csv"
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
        return try await body(path, name)
    }
}

extension Routes {
    /// `POST /v1/clock` `{"at"?}` (D1): appends a clock event at `at` (RFC 3339 or epoch milliseconds), the
    /// daemon's wall time when the body is empty or has no `at`; 202 with the receipt.
    func tick(_ request: Request) async throws -> Response {
        Self.accepted(try await engine.tick(at: try await Self.clockTime(request)))
    }

    /// The time a `POST /v1/clock` body names; nil for the wall time.
    static func clockTime(_ request: Request) async throws -> Int64? {
        var request = request
        let body = try await request.collectBody(upTo: 4 << 10)
        var at: Int64?
        if body.readableBytes > 0 {
            let clock: ClockRequest
            do {
                clock = try JSONDecoder().decode(ClockRequest.self, from: Data(buffer: body))
            } catch {
                throw APIError(
                    .badRequest, "expected a JSON object {\"at\"?} with an RFC 3339 date-time or epoch milliseconds",
                    field: "at")
            }
            switch clock.at {
            case .text(let text)?:
                guard let millis = Timestamp.parse(text) else {
                    throw APIError(
                        .badRequest, "\"at\" must be an RFC 3339 date-time or epoch milliseconds", field: "at")
                }
                at = millis
            case .millis(let millis)?: at = millis
            case nil: at = nil
            }
        }
        return at
    }

    /// `GET /v1/clock[?after=SEQ]` (D1): the fold's now and the awards waiting to age.
    func clock(_ request: Request) async throws -> Response {
        try await awaitProjection(request)
        let state = try engine.clockState()
        return JSONResponse.make(
            ClockDocument(
                now: state.now.map(Timestamp.format), aging: state.aging, nextDue: state.nextDue.map(Timestamp.format)))
    }
}

extension RulesVersionDocument {
    init(_ info: RulesVersionInfo, inForce: Int64, withText: Bool) {
        self.init(
            version: info.version, seq: info.seq, publishedAt: Timestamp.format(info.publishedAt), source: info.source,
            inForce: info.version == inForce, text: withText ? info.text : nil)
    }
}
