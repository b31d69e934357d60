import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TallyAPI
import TallyCore
import TallyEngine

/// Lists and the change feed of the admin socket (SPEC §14, L1 L2).
extension Routes {
    /// `GET /v1/contacts?min_points&max_points&group&tag&segment&campaign&trigger&sort&limit&cursor` (L1).
    func listContacts(_ request: Request) async throws -> Response {
        let page = try await engine.listContacts(try Self.listQuery(request.uri.queryParameters))
        return JSONResponse.make(
            ContactListDocument(contacts: page.contacts.map(ContactListDocument.Item.init), next: page.next))
    }

    /// The list query of `GET /v1/contacts` and the UI's contacts page; each bad parameter is a 400 naming it.
    static func listQuery(_ parameters: Parameters) throws -> ContactListQuery {
        var query = ContactListQuery()
        for (field, keyPath) in [("min_points", \ContactListQuery.minPoints), ("max_points", \.maxPoints)] {
            guard let text = parameters[Substring(field)].map(String.init), !text.isEmpty else { continue }
            guard let value = Int64(text) else {
                throw APIError(.badRequest, "\"\(field)\" must be an integer", field: field)
            }
            query[keyPath: keyPath] = value
        }
        let names: [(String, WritableKeyPath<ContactListQuery, String?>)] = [
            ("group", \.group), ("tag", \.tag), ("segment", \.segment), ("campaign", \.campaign),
            ("trigger", \.trigger), ("cursor", \.cursor),
        ]
        for (field, keyPath) in names {
            if let text = parameters[Substring(field)].map(String.init), !text.isEmpty {
                query[keyPath: keyPath] = text
            }
        }
        if let text = parameters["sort"].map(String.init), !text.isEmpty {
            guard let sort = ContactListQuery.Sort(rawValue: text) else {
                throw APIError(.badRequest, "\"sort\" must be -points, points or id", field: "sort")
            }
            query.sort = sort
        }
        if let text = parameters["limit"].map(String.init), !text.isEmpty {
            guard let limit = Int(text) else {
                throw APIError(.badRequest, "\"limit\" must be an integer", field: "limit")
            }
            query.limit = limit
        }
        return query
    }

    /// `GET /v1/changes?after=SEQ[.INDEX]&limit=N` (L2): score changes in log order; with
    /// `Accept: text/event-stream`, the same as Server-Sent Events that follow the fold (resumed from
    /// `Last-Event-ID`).
    func changes(_ request: Request) async throws -> Response {
        let query = try Self.changesQuery(request)
        let engine = self.engine
        let page: ChangeFeedPage.Read = { position, limit in
            let page = try await engine.changes(after: position, limit: limit)
            return ChangeFeedPage(
                changes: page.changes.map(ChangeDocument.init), next: page.next, rebuild: page.rebuild)
        }
        if query.stream {
            _ = try await page(query.position, 1)  // a bad position or limit is a 400, not a stream
            return Self.streamChanges(
                from: query.position, page: page, folded: { engine.projectedSeq },
                awaitFolding: { folded, timeout in await engine.awaitFolding(beyond: folded, timeout: timeout) })
        }
        return JSONResponse.make(try await page(query.position, query.limit).document)
    }

    /// What a `GET /v1/changes` asks for: the position after which it reads (`after`, or `Last-Event-ID` when a
    /// stream resumes), how many changes, and whether as Server-Sent Events.
    static func changesQuery(_ request: Request) throws -> (position: ChangePosition, limit: Int, stream: Bool) {
        let parameters = request.uri.queryParameters
        var position = ChangePosition(seq: 0)
        let resume = HTTPField.Name("Last-Event-ID").flatMap { request.headers[$0] }
        if let text = resume ?? parameters["after"].map(String.init), !text.isEmpty {
            guard let parsed = ChangePosition(text) else {
                throw APIError(
                    .badRequest, "\"after\" must be a feed position: SEQ or SEQ.INDEX",
                    field: resume == nil ? "after" : "Last-Event-ID")
            }
            position = parsed
        }
        var limit = 1_000
        if let text = parameters["limit"].map(String.init), !text.isEmpty {
            guard let value = Int(text) else {
                throw APIError(.badRequest, "\"limit\" must be an integer", field: "limit")
            }
            limit = value
        }
        return (position, limit, request.headers[.accept]?.contains("text/event-stream") == true)
    }

    /// Changes written to the stream per read.
    static let streamPage = 500
    /// A comment line is sent after this long without changes, so that proxies and clients see a live stream.
    static let keepAlive = Duration.seconds(15)
    /// How long a caught-up stream waits for the fold before it reads again.
    static let recheck = Duration.seconds(1)

    /// The SSE stream: pages of changes read through `page` as they are folded, each change an event with
    /// `id: SEQ.INDEX`; an `event: rebuild` when the projections were replaced by a rebuild. Caught up, it waits
    /// with `awaitFolding` (given what `folded` said before the read; false: nothing new within the timeout). A
    /// consumer that stops reading holds one page in memory and nothing else: the write waits, and the fold does not.
    static func streamChanges(
        from start: ChangePosition, page: @escaping ChangeFeedPage.Read, folded: @escaping @Sendable () -> UInt64,
        awaitFolding: @escaping @Sendable (UInt64, Duration) async -> Bool
    ) -> Response {
        let body = ResponseBody { writer in
            var position = start
            var rebuild: UInt64?? = .none  // unknown until the first read
            var quiet = Duration.zero
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            while !Task.isCancelled {
                let before = folded()  // read first: anything folded after it wakes the wait below
                let page = try await page(position, Self.streamPage)
                var text = ""
                if let known = rebuild, known != page.rebuild {
                    text += "event: rebuild\ndata: {\"rebuild\":\(page.rebuild.map(String.init) ?? "null")}\n\n"
                }
                rebuild = .some(page.rebuild)
                for change in page.changes {
                    let data = try encoder.encode(change)
                    text += "id: \(change.position)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
                }
                position = page.next
                if !text.isEmpty {
                    try await writer.write(ByteBuffer(string: text))
                    quiet = .zero
                }
                // Caught up: wait for the fold, a second at a time (a rebuild's switch folds nothing new and is
                // noticed at the next read), with a comment line after `keepAlive` of silence.
                if page.changes.count < Self.streamPage, !(await awaitFolding(before, Self.recheck)) {
                    if Task.isCancelled { break }
                    quiet += Self.recheck
                    if quiet >= Self.keepAlive {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        quiet = .zero
                    }
                }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: body)
    }
}

/// A page of the change feed (L2), from a node's projections or from every partition of a cluster.
struct ChangeFeedPage: Sendable {
    /// Reads up to `limit` changes after a position.
    typealias Read = @Sendable (ChangePosition, Int) async throws -> ChangeFeedPage

    var changes: [ChangeDocument]
    var next: ChangePosition
    var rebuild: UInt64?

    var document: ChangeListDocument {
        ChangeListDocument(changes: changes, next: next.description, rebuild: rebuild)
    }
}
