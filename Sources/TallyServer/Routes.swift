import Foundation
public import Hummingbird
public import Logging
import TallyAPI
import TallyCore
public import TallyEngine

/// The HTTP API of both sockets (SPEC §7). The ingest socket gets the behaviour routes only; the admin socket
/// gets those and the administrative ones.
public struct Routes: Sendable {
    let engine: TallyEngine
    let pixel: Pixel

    public init(engine: TallyEngine, logger: Logger) {
        self.engine = engine
        self.pixel = Pixel(logger: logger) { event in _ = try await engine.append([event]) }
    }

    /// Routes for the world-writable ingest socket.
    public func ingestRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(socket: "ingest"))
        router.add(middleware: EngineErrorMiddleware())
        addBehaviourRoutes(to: router, viaIngest: true)
        return router
    }

    /// Routes for the owner-only admin socket, or with `loopbackPort` for the `admin_http` listener on that port
    /// (guarded against requests from web pages).
    public func adminRouter(loopbackPort: Int? = nil) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(socket: loopbackPort == nil ? "admin" : "admin_http"))
        if let loopbackPort { router.add(middleware: LoopbackGuardMiddleware(port: loopbackPort)) }
        router.add(middleware: EngineErrorMiddleware())
        addBehaviourRoutes(to: router, viaIngest: false)
        router.get("/metrics") { _, _ in MetricsExport.response(self.engine) }
        Self.addUIRoutes(to: router, source: uiSource)
        router.get("/v1/contacts") { request, _ in try await self.listContacts(request) }
        router.get("/v1/changes") { request, _ in try await self.changes(request) }
        router.get("/v1/contacts/:id") { request, context in try await self.contact(request, context) }
        router.post("/v1/contacts/:id") { request, context in try await self.updateContact(request, context) }
        router.delete("/v1/contacts/:id") { _, context in try await self.erase(context) }
        router.get("/v1/contacts/:id/explain") { request, context in try await self.explain(request, context) }
        router.post("/v1/contacts/:id/points") { request, context in try await self.changePoints(request, context) }
        router.get("/v1/rules") { request, _ in try self.listRules(request) }
        router.put("/v1/rules") { request, _ in try await self.publishRules(request) }
        router.post("/v1/rebuild") { request, _ in try await self.rebuild(request) }
        router.get("/v1/rebuild") { _, _ in self.rebuildProgress() }
        router.post("/v1/verify") { _, _ in try await self.verify() }
        router.post("/v1/clock") { request, _ in try await self.tick(request) }
        router.get("/v1/clock") { request, _ in try await self.clock(request) }
        router.post("/v1/import/points") { request, _ in try await self.importPoints(request) }
        router.post("/v1/backup") { request, _ in try await self.backup(request) }
        router.get("/v1/outbox") { request, _ in try await self.listOutbox(request) }
        router.post("/v1/outbox/:key/retry") { _, context in try await self.retryOutbox(context) }
        router.get("/v1/email/preview") { request, _ in try await self.previewEmail(request) }
        return router
    }

    /// The routes of both sockets; `viaIngest` marks the merges they append as the ingest socket's (I1).
    private func addBehaviourRoutes(to router: Router<BasicRequestContext>, viaIngest: Bool) {
        router.post("/v1/events") { request, context in try await self.postEvents(request, context) }
        router.post("/v1/merge") { request, _ in try await self.merge(request, viaIngest: viaIngest) }
        addSegmentRoutes(to: router, viaIngest: viaIngest)
        router.get("/health") { _, _ in self.health() }
        router.get("/v1/pixel.gif") { request, _ in await self.pixel.handle(request) }
    }

    /// `POST /v1/events`: one JSON event, or NDJSON. Answers 202 only after the durable commit.
    func postEvents(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let limits = engine.configuration.limits
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limits.maxBodyBytes)
        } catch {
            TallyMetrics.rejected("too_large").increment()
            throw APIError(.contentTooLarge, "request body larger than \(limits.maxBodyBytes) bytes")
        }
        let contentType = request.headers[.contentType] ?? ""
        let decoder = EventDecoder(receivedAt: wallClockMillis())
        let events: PackedEvents
        do {
            events = try body.withUnsafeReadableBytes { bytes throws(EventDecodingError) -> PackedEvents in
                try decoder.packBody(bytes, contentType: contentType, maxLineBytes: limits.maxLineBytes)
            }
        } catch {
            TallyMetrics.rejected(error.isAdministrative ? "administrative" : "invalid").increment()
            throw APIError(
                error.isAdministrative ? .forbidden : .badRequest, error.description, line: error.line,
                field: error.field)
        }
        guard !events.isEmpty else { throw APIError(.badRequest, "the request holds no event") }
        return Self.accepted(try await engine.append(events))
    }

    /// `GET /health`: 200 while the log accepts writes, 503 with the reason when it does not.
    func health() -> Response {
        let (head, projected, failure) = engine.health()
        let body = HealthStatus(
            status: failure == nil ? "ok" : "unavailable", logHead: head, projected: projected, error: failure)
        return JSONResponse.make(body, status: failure == nil ? .ok : .serviceUnavailable)
    }

    /// Waits for `?after=SEQ` to be projected (read your own writes); 504 after the configured wait.
    func awaitProjection(_ request: Request) async throws {
        guard let target = try Self.afterSequence(request) else { return }
        try await engine.awaitProjection(through: target)
    }

    /// The sequence number of `?after=SEQ` (read your own writes), nil without one; 400 when it is not a number.
    static func afterSequence(_ request: Request) throws -> UInt64? {
        guard let text = request.uri.queryParameters["after"] else { return nil }
        guard let target = UInt64(text) else { throw APIError(.badRequest, "\"after\" must be a sequence number") }
        return target
    }

    static func contactID(_ context: BasicRequestContext) throws -> String {
        guard let raw = context.parameters.get("id"), let id = raw.removingPercentEncoding,
            EventLimits.contact.contains(id.utf8.count)
        else { throw APIError(.badRequest, "invalid contact id") }
        return id
    }

    /// `GET /v1/contacts/{id}[?at=T]`: the contact's scores and state, or its scores as they stood at time T
    /// from the audit trail (A6); 404 when never seen.
    func contact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        try await awaitProjection(request)
        if let asOf = try Self.asOf(request) {
            guard let (contact, explanation) = try await engine.explain(contact: id, asOf: asOf, limit: 0) else {
                throw APIError(.notFound, "unknown contact \"\(id)\"")
            }
            var document = ContactDocument(contact)
            document.points = explanation.points
            document.groups = explanation.groups
            document.at = Timestamp.format(asOf)
            return JSONResponse.make(document)
        }
        guard let contact = try engine.resolvedContact(id) else {
            throw APIError(.notFound, "unknown contact \"\(id)\"")
        }
        return JSONResponse.make(ContactDocument(contact))
    }

    /// `?at=T`: an RFC 3339 time or epoch milliseconds.
    static func asOf(_ request: Request) throws -> Int64? {
        guard let text = request.uri.queryParameters["at"] else { return nil }
        guard let at = Int64(text) ?? Timestamp.parse(String(text)) else {
            throw APIError(.badRequest, "\"at\" must be an RFC 3339 time or epoch milliseconds", field: "at")
        }
        return at
    }

    /// Appends events and answers 202 with the receipt; 503 when the log cannot take them.
    func append(_ events: [Event]) async throws -> Response {
        Self.accepted(try await engine.append(events))
    }

    /// The 202 answer to an append.
    static func accepted(_ receipt: AppendReceipt) -> Response {
        let document = EventReceipt(
            accepted: receipt.accepted, duplicates: receipt.duplicates, firstSeq: receipt.firstSeq,
            lastSeq: receipt.lastSeq)
        return Response(
            status: .accepted, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: document.json + "\n")))
    }

    /// `POST /v1/contacts/{id}`: a `contact.update` event setting the contact's email, owner email and fields
    /// (F1; a field given as `null` is removed). The body may hold 100 fields of 1 KiB: 256 KiB at most.
    func updateContact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        let (update, fields) = try await Self.contactUpdate(request)
        return Self.accepted(
            try await engine.updateContact(id, email: update.email, ownerEmail: update.ownerEmail, fields: fields))
    }

    /// The body of `POST /v1/contacts/{id}`, read and checked for its form, with its fields as values.
    static func contactUpdate(_ request: Request) async throws -> (ContactUpdateRequest, [String: FieldValue?]) {
        var request = request
        let body = try await request.collectBody(upTo: 256 << 10)
        let update: ContactUpdateRequest
        do {
            update = try JSONDecoder().decode(ContactUpdateRequest.self, from: Data(buffer: body))
        } catch {
            throw APIError(
                .badRequest,
                "expected a JSON object with \"email\" and/or \"owner_email\" strings and/or \"fields\", an object "
                    + "of strings, numbers and nulls")
        }
        return (update, (update.fields ?? [:]).mapValues { $0.map(FieldValue.init) })
    }

    /// `GET /v1/outbox[?state=pending|delivered|failed][&limit=N]`.
    func listOutbox(_ request: Request) async throws -> Response {
        let (state, limit) = Self.outboxQuery(request)
        return JSONResponse.make(OutboxList(entries: try await engine.outboxEntries(state: state, limit: limit)))
    }

    /// `?state=` and `?limit=` (default 1,000) of `GET /v1/outbox`.
    static func outboxQuery(_ request: Request) -> (state: String?, limit: Int) {
        let query = request.uri.queryParameters
        return (query["state"].map(String.init), query["limit"].flatMap { Int($0) } ?? 1000)
    }

    /// `POST /v1/outbox/{key}/retry`: puts a failed (or pending) entry back in the queue, due now.
    func retryOutbox(_ context: BasicRequestContext) async throws -> Response {
        JSONResponse.make(try await engine.retryOutbox(key: try Self.outboxKey(context)))
    }

    /// The `{key}` of an outbox route.
    static func outboxKey(_ context: BasicRequestContext) throws -> String {
        guard let raw = context.parameters.get("key"), let key = raw.removingPercentEncoding else {
            throw APIError(.badRequest, "invalid outbox key")
        }
        return key
    }
}
