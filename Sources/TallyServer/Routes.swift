import Foundation
public import Hummingbird
public import Logging
import TallyCore
public import TallyEngine
import TallyStore

/// The HTTP API of both sockets (SPEC §7). The ingest socket gets the behaviour routes only; the admin socket
/// gets those and the administrative ones.
public struct Routes: Sendable {
    let engine: TallyEngine
    let pixel: Pixel

    public init(engine: TallyEngine, logger: Logger) {
        self.engine = engine
        self.pixel = Pixel(engine: engine, logger: logger)
    }

    /// Routes for the world-writable ingest socket.
    public func ingestRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(socket: "ingest"))
        addBehaviourRoutes(to: router)
        return router
    }

    /// Routes for the owner-only admin socket, or with `loopbackPort` for the `admin_http` listener on that port
    /// (guarded against requests from web pages).
    public func adminRouter(loopbackPort: Int? = nil) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(socket: loopbackPort == nil ? "admin" : "admin_http"))
        if let loopbackPort { router.add(middleware: LoopbackGuardMiddleware(port: loopbackPort)) }
        addBehaviourRoutes(to: router)
        router.get("/metrics") { _, _ in MetricsExport.response(self.engine) }
        addUIRoutes(to: router)
        router.get("/v1/contacts/:id") { request, context in try await self.contact(request, context) }
        router.post("/v1/contacts/:id") { request, context in try await self.updateContact(request, context) }
        router.get("/v1/contacts/:id/explain") { request, context in try await self.explain(request, context) }
        router.post("/v1/contacts/:id/points") { request, context in try await self.changePoints(request, context) }
        router.get("/v1/rules") { request, _ in try self.listRules(request) }
        router.put("/v1/rules") { request, _ in try await self.publishRules(request) }
        router.post("/v1/rebuild") { request, _ in try await self.rebuild(request) }
        router.get("/v1/rebuild") { _, _ in self.rebuildProgress() }
        router.post("/v1/verify") { _, _ in try await self.verify() }
        router.post("/v1/import/points") { request, _ in try await self.importPoints(request) }
        router.post("/v1/backup") { request, _ in try await self.backup(request) }
        router.get("/v1/outbox") { request, _ in try self.listOutbox(request) }
        router.post("/v1/outbox/:key/retry") { _, context in try await self.retryOutbox(context) }
        return router
    }

    private func addBehaviourRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v1/events") { request, context in try await self.postEvents(request, context) }
        router.get("/health") { _, _ in self.health() }
        router.get("/v1/pixel.gif") { request, _ in await self.pixel.handle(request) }
    }

    struct Receipt: Encodable {
        var accepted: Int
        var duplicates: Int
        var first_seq: UInt64?
        var last_seq: UInt64?
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
        let events: [Event]
        do {
            events = try body.withUnsafeReadableBytes { bytes throws(EventDecodingError) -> [Event] in
                try decoder.decodeBody(bytes, contentType: contentType, maxLineBytes: limits.maxLineBytes)
            }
        } catch {
            TallyMetrics.rejected(error.isAdministrative ? "administrative" : "invalid").increment()
            throw APIError(
                error.isAdministrative ? .forbidden : .badRequest, error.description, line: error.line,
                field: error.field)
        }
        guard !events.isEmpty else { throw APIError(.badRequest, "the request holds no event") }
        return try await append(events)
    }

    struct Health: Encodable {
        var status: String
        var log_head: UInt64
        var projected: UInt64
        var error: String?
    }

    /// `GET /health`: 200 while the log accepts writes, 503 with the reason when it does not.
    func health() -> Response {
        let failure = engine.writer.failure
        let body = Health(
            status: failure == nil ? "ok" : "unavailable", log_head: engine.writer.head.value,
            projected: engine.projector.projected.value, error: failure)
        return JSONResponse.make(body, status: failure == nil ? .ok : .serviceUnavailable)
    }

    /// Waits for `?after=SEQ` to be projected (read your own writes); 504 after the configured wait.
    func awaitProjection(_ request: Request) async throws {
        guard let text = request.uri.queryParameters["after"] else { return }
        guard let target = UInt64(text) else { throw APIError(.badRequest, "\"after\" must be a sequence number") }
        let timeout = Duration.milliseconds(engine.configuration.limits.readAfterTimeout)
        guard await engine.projector.projected.wait(forAtLeast: target, timeout: timeout) else {
            throw APIError(
                .gatewayTimeout,
                "projections have not reached sequence \(target) yet (at \(engine.projector.projected.value))")
        }
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
            guard let (state, explanation) = try engine.explain(contact: id, asOf: asOf, limit: 0) else {
                throw APIError(.notFound, "unknown contact \"\(id)\"")
            }
            var view = ContactView(id: id, state: state)
            view.points = explanation.points
            view.groups = explanation.groups
            view.at = Timestamp.format(asOf)
            return JSONResponse.make(view)
        }
        guard let state = try engine.projections.read({ txn in try txn.contact(id) }) else {
            throw APIError(.notFound, "unknown contact \"\(id)\"")
        }
        return JSONResponse.make(ContactView(id: id, state: state))
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
        try await appending { try await engine.writer.append(events) }
    }

    /// Runs an append and answers 202 with its receipt, or 503 when the log cannot take the events.
    func appending(_ append: () async throws -> AppendReceipt) async throws -> Response {
        let receipt: AppendReceipt
        do {
            receipt = try await append()
        } catch let error as AppendError {
            TallyMetrics.rejected("unavailable").increment()
            throw APIError(.serviceUnavailable, error.description)
        }
        return JSONResponse.make(
            Receipt(
                accepted: receipt.accepted, duplicates: receipt.duplicates, first_seq: receipt.firstSeq,
                last_seq: receipt.lastSeq), status: .accepted)
    }

    struct ContactUpdate: Decodable {
        var email: String?
        var owner_email: String?
    }

    /// `POST /v1/contacts/{id}`: a `contact.update` event setting the contact's email and owner email.
    func updateContact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        var request = request
        let body = try await request.collectBody(upTo: 64 << 10)
        let update: ContactUpdate
        do {
            update = try JSONDecoder().decode(ContactUpdate.self, from: Data(buffer: body))
        } catch {
            throw APIError(.badRequest, "expected a JSON object with \"email\" and/or \"owner_email\" strings")
        }
        guard update.email != nil || update.owner_email != nil else {
            throw APIError(.badRequest, "give \"email\" or \"owner_email\"", field: "email")
        }
        for (field, value) in [("email", update.email), ("owner_email", update.owner_email)] {
            if let value, !EmailAddress.isValid(value) {
                throw APIError(.badRequest, "\"\(value)\" is not an email address", field: field)
            }
        }
        return try await append([
            Event(
                type: .contactUpdate, contact: id, at: wallClockMillis(), email: update.email,
                ownerEmail: update.owner_email)
        ])
    }

    struct OutboxItem: Encodable {
        var key: String
        var kind: String
        var contact: String
        var trigger: String
        var event: String
        var state: String
        var attempts: Int
        var due_at: String?
        var last_error: String?
        var fired_seq: UInt64
        var delivered_at: String?

        init(_ entry: OutboxEntry) {
            key = entry.key
            kind = entry.kindName
            contact = entry.contact
            trigger = entry.trigger
            event = entry.event
            state = entry.state.rawValue
            attempts = entry.attempts
            due_at = entry.state == .pending ? Timestamp.format(entry.dueAt) : nil
            last_error = entry.lastError
            fired_seq = entry.firedSeq
            delivered_at = entry.deliveredAt.map(Timestamp.format)
        }
    }

    /// `GET /v1/outbox[?state=pending|delivered|failed][&limit=N]`.
    func listOutbox(_ request: Request) throws -> Response {
        let query = request.uri.queryParameters
        var state: OutboxEntry.State?
        if let text = query["state"] {
            guard let value = OutboxEntry.State(rawValue: String(text)) else {
                throw APIError(.badRequest, "state must be pending, delivered or failed", field: "state")
            }
            state = value
        }
        let limit = query["limit"].flatMap { Int($0) } ?? 1000
        let entries = try engine.projections.read { txn in try txn.outboxEntries(state: state, limit: limit) }
        return JSONResponse.make(["entries": entries.map(OutboxItem.init)])
    }

    /// `POST /v1/outbox/{key}/retry`: puts a failed (or pending) entry back in the queue, due now.
    func retryOutbox(_ context: BasicRequestContext) async throws -> Response {
        guard let raw = context.parameters.get("key"), let key = raw.removingPercentEncoding else {
            throw APIError(.badRequest, "invalid outbox key")
        }
        do {
            return JSONResponse.make(OutboxItem(try await engine.outbox.retry(key: key)))
        } catch let error as OutboxRetryError {
            switch error {
            case .unknown: throw APIError(.notFound, error.description)
            case .alreadyDelivered, .notFired: throw APIError(.conflict, error.description)
            case .projectorBehind: throw APIError(.serviceUnavailable, error.description)
            }
        } catch let error as AppendError {
            throw APIError(.serviceUnavailable, error.description)
        }
    }
}
