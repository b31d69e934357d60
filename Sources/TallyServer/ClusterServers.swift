import Foundation
import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle
import TallyAPI
public import TallyCluster
public import TallyCore
public import TallyEngine
import TallyNATS

/// The HTTP servers of a cluster node (SPEC §13; `Docs/cluster.md`): the same two sockets, with the API cluster mode
/// has — ingest, the pixel and the Segment routes through the cluster's log (K1, K2); contacts, explain, changes by
/// hand, merges, erasure, lists, the change feed, the admin UI, the email preview, rules, rebuilds, the clock, the
/// outbox, imports and verify across the partitions (K4); health, metrics, `GET /v1/cluster` and this node's verify.
/// The route it does not have (backups: the stream is the log, `Docs/cluster.md`) answers 501.
public enum ClusterServers {
    /// The two servers of `node`; `rules` is the rules file the node published, which checks changes by hand.
    public static func make(
        node: ClusterNode, configuration: Configuration, rules: RuleSet, logger: Logger
    ) throws -> [any Service] {
        for path in [configuration.ingestSocket, configuration.adminSocket] { try Servers.prepareSocketPath(path) }
        let routes = ClusterRoutes(node: node, configuration: configuration, rules: rules, logger: logger)
        let ingest = Application(
            router: routes.router(administrative: false),
            configuration: .init(address: .unixDomainSocket(path: configuration.ingestSocket), serverName: "tally"),
            onServerRunning: { _ in chmod(configuration.ingestSocket, 0o666) },
            logger: logger)
        let admin = Application(
            router: routes.router(administrative: true),
            configuration: .init(address: .unixDomainSocket(path: configuration.adminSocket), serverName: "tally"),
            onServerRunning: { _ in chmod(configuration.adminSocket, mode_t(configuration.adminSocketMode)) },
            logger: logger)
        return [ingest, admin]
    }
}

/// The routes of a cluster node.
struct ClusterRoutes: Sendable {
    let node: ClusterNode
    let configuration: Configuration
    let rules: RuleSet
    let pixel: Pixel
    var limits: Configuration.Limits { configuration.limits }

    init(node: ClusterNode, configuration: Configuration, rules: RuleSet, logger: Logger) {
        self.node = node
        self.configuration = configuration
        self.rules = rules
        pixel = Pixel(logger: logger) { event in _ = try await node.append([event], request: UUID().uuidString) }
    }

    func router(administrative: Bool) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestMetricsMiddleware(socket: administrative ? "admin" : "ingest"))
        router.add(middleware: NotInClusterModeMiddleware())
        router.add(middleware: EngineErrorMiddleware())
        router.post("/v1/events") { request, _ in try await self.postEvents(request) }
        router.post("/v1/merge") { request, _ in try await self.merge(request, viaIngest: !administrative) }
        router.get("/health") { _, _ in await self.health() }
        router.get("/v1/pixel.gif") { request, _ in await pixel.handle(request) }
        Routes.addSegmentRoutes(to: router, configuration: configuration, viaIngest: !administrative) { events in
            var receipt = AppendReceipt()
            for ack in try await self.published(events, refused: .skip) {
                if ack.duplicate {
                    receipt.duplicates += 1
                } else {
                    receipt.accepted += 1
                    receipt.include(ack.sequence)
                }
            }
            return receipt
        }
        if administrative {
            Routes.addUIRoutes(to: router, source: uiSource)
            router.get("/v1/changes") { request, _ in try await self.changes(request) }
            router.get("/v1/email/preview") { request, _ in try await self.previewEmail(request) }
            router.get("/v1/contacts") { request, _ in
                JSONResponse.make(try await node.listContacts(try Routes.listQuery(request.uri.queryParameters)))
            }
            router.get("/v1/contacts/{id}") { request, context in try await self.contact(request, context) }
            router.post("/v1/contacts/{id}") { request, context in try await self.updateContact(request, context) }
            router.delete("/v1/contacts/{id}") { _, context in try await self.erase(context) }
            router.get("/v1/contacts/{id}/explain") { request, context in try await self.explain(request, context) }
            router.post("/v1/contacts/{id}/points") { request, context in
                try await self.changePoints(request, context)
            }
            router.get("/metrics") { _, _ in
                await node.sampleMetrics()
                return MetricsExport.response()
            }
            router.get("/v1/rules") { request, _ in try await self.listRules(request) }
            router.put("/v1/rules") { request, _ in try await self.publishRules(request) }
            router.post("/v1/rebuild") { request, _ in try await self.rebuild(request) }
            router.get("/v1/rebuild") { _, _ in JSONResponse.make(try await self.rebuilds()) }
            router.post("/v1/clock") { request, _ in try await self.tick(request) }
            router.get("/v1/clock") { request, _ in try await self.clock(request) }
            router.get("/v1/outbox") { request, _ in
                let (state, limit) = Routes.outboxQuery(request)
                return JSONResponse.make(
                    OutboxList(entries: try await node.outboxEntries(state: state, limit: min(limit, 1000))))
            }
            router.post("/v1/outbox/{key}/retry") { _, context in
                JSONResponse.make(try await node.retryOutbox(key: try Routes.outboxKey(context)))
            }
            router.post("/v1/import/points") { request, _ in try await self.importPoints(request) }
            router.get("/v1/cluster") { _, _ in try await self.status() }
            router.post("/v1/cluster/verify") { _, _ in try await self.verify() }
            router.post("/v1/verify") { _, _ in JSONResponse.make(try await node.verifyCluster()) }
        }
        return router
    }

    /// `POST /v1/events`: the events published to their partitions; 202 once the stream stored every one (K2).
    func postEvents(_ request: Request) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limits.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "request body larger than \(limits.maxBodyBytes) bytes")
        }
        let decoder = EventDecoder(receivedAt: wallClockMillis())
        let contentType = request.headers[.contentType] ?? ""
        let events: [Event]
        do {
            events = try body.withUnsafeReadableBytes { bytes throws(EventDecodingError) -> [Event] in
                try decoder.decodeBody(bytes, contentType: contentType, maxLineBytes: limits.maxLineBytes)
            }
        } catch {
            throw APIError(
                error.isAdministrative ? .forbidden : .badRequest, error.description, line: error.line,
                field: error.field)
        }
        guard !events.isEmpty else { throw APIError(.badRequest, "the request holds no event") }
        return try await publish(events)
    }

    /// `POST /v1/merge` (I2): a `contact.merge` published to the partition of `from`; 202 once stored, after it is
    /// judged as a single node judges it (``ClusterNode/appendJudgingMerges(_:request:)``). Across partitions, the
    /// fold of `from`'s partition moves its history to the partition of `into`, which folds the merge
    /// (`Docs/cluster.md`).
    func merge(_ request: Request, viaIngest: Bool) async throws -> Response {
        let merge = try await Routes.mergeRequest(request)
        return try await publish([
            Event.merge(from: merge.from, into: merge.into, at: wallClockMillis(), id: merge.id, viaIngest: viaIngest)
        ])
    }

    /// Publishes events to their partitions — their merges judged first, one request's at a time in the cluster — and
    /// answers 202 with the stream's sequence numbers once the stream stored every one (K2); 503 when it did not.
    func publish(_ events: [Event]) async throws -> Response {
        Self.accepted(try await published(events))
    }

    /// Publishes one request's events, its merges judged (``ClusterNode/appendJudgingMerges(_:request:refused:)``);
    /// the stream's acknowledgements.
    func published(_ events: [Event], refused: RefusedMerges = .reject) async throws -> [PublishAckSummary] {
        do {
            return try await node.appendJudgingMerges(events, request: UUID().uuidString, refused: refused)
                .map(PublishAckSummary.init)
        } catch let error as EngineError {
            throw error
        } catch let error as ClusterReadError {
            throw APIError(.gatewayTimeout, "judging the merge: \(error)")
        } catch {
            throw APIError(.serviceUnavailable, "the cluster's log did not store the events: \(error)")
        }
    }

    /// The 202 answer to a publication: the stream sequences of the messages stored.
    static func accepted(_ acks: [PublishAckSummary]) -> Response {
        let stored = acks.filter { !$0.duplicate }
        let receipt = EventReceipt(
            accepted: stored.count, duplicates: acks.count - stored.count, firstSeq: stored.map(\.sequence).min(),
            lastSeq: stored.map(\.sequence).max())
        return Response(
            status: .accepted, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: receipt.json + "\n")))
    }

    /// `POST /v1/import/points[?file=NAME]` (M2): the CSV validated in full against the rules in force, then its
    /// `points.set` events published to their partitions in batches of 10,000; 202 once the stream stored all.
    func importPoints(_ request: Request) async throws -> Response {
        let groups = Set((await node.rulesInForce ?? rules).groups)
        return try await Routes.spooled(request, in: configuration.dataDirectory) { path, name in
            var acks: [PublishAckSummary] = []
            let upload = UUID().uuidString
            let rows = try await TallyEngine.importPoints(
                file: path, name: name, groups: groups, blocking: node.blocking
            ) { events in
                do {
                    acks += try await node.append(events, request: "import-\(upload)-\(acks.count)").map(
                        PublishAckSummary.init)
                } catch {
                    throw APIError(.serviceUnavailable, "the cluster's log did not store the import: \(error)")
                }
            }
            let stored = acks.filter { !$0.duplicate }.map(\.sequence)
            return JSONResponse.make(
                ImportReceipt(imported: rows, firstSeq: stored.min(), lastSeq: stored.max()), status: .accepted)
        }
    }

    /// `GET /v1/rules[?version=N]` (A3): the versions every partition holds; 503 while they differ.
    func listRules(_ request: Request) async throws -> Response {
        let version = try? Routes.rulesVersion(request)
        let (versions, inForce) = try await node.rulesVersions(withText: version)
        return try Routes.rulesList(request, versions: versions, inForce: inForce)
    }

    /// `PUT /v1/rules[?source=NAME]` (A3): the rules validated against this node's configuration and published to
    /// every partition as the next version; 201.
    func publishRules(_ request: Request) async throws -> Response {
        let (text, source) = try await Routes.rulesPublication(request)
        try TallyEngine.validatePublication(text, source: source, configuration: configuration)
        let info = try await node.publishRules(text: text, source: source)
        return JSONResponse.make(RulesVersionDocument(info, inForce: info.version, withText: false), status: .created)
    }

    /// `POST /v1/rebuild[?dry_run=true][&version=N]` (A4): a rebuild event published to every partition (202), or
    /// every partition's dry run added up (200).
    func rebuild(_ request: Request) async throws -> Response {
        if Routes.isDryRun(request) {
            return JSONResponse.make(try await node.previewRebuild(version: try Routes.rulesVersion(request)))
        }
        let (seq, version, at) = try await node.requestRebuild(version: try Routes.rulesVersion(request))
        return JSONResponse.make(RebuildStarted(seq: seq, rulesVersion: version, requestedAt: at), status: .accepted)
    }

    /// `GET /v1/rebuild`: each partition's rebuild.
    func rebuilds() async throws -> ClusterRebuildStatus {
        ClusterRebuildStatus(partitions: try await node.rebuilds().map { .init(partition: $0, rebuild: $1) })
    }

    /// `POST /v1/clock` `{"at"?}` (D1): a clock event published to every partition; 202.
    func tick(_ request: Request) async throws -> Response {
        let acks = try await node.tick(at: try await Routes.clockTime(request))
        return Self.accepted(acks.map(PublishAckSummary.init))
    }

    /// `GET /v1/clock[?after=SEQ]` (D1): the earliest partition's now, and the awards waiting to age in all of them.
    func clock(_ request: Request) async throws -> Response {
        let state = try await node.clockState(settled: try Self.readsYourWrites(request))
        return JSONResponse.make(
            ClockDocument(
                now: state.now.map(Timestamp.format), aging: state.aging, nextDue: state.nextDue.map(Timestamp.format)))
    }

    /// `GET /v1/contacts/{id}/explain[?at=T&limit=N&after=SEQ]` (A2, A6): the contact's explanation by the holder
    /// of its partition (K4).
    func explain(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Routes.contactID(context)
        let (asOf, limit) = (try Routes.asOf(request), try Routes.explainLimit(request))
        let settled = try Self.readsYourWrites(request)
        let document = try await Self.fromHolder {
            try await node.explain(id, asOf: asOf, limit: limit, settled: settled)
        }
        guard let document else { throw APIError(.notFound, "unknown contact \"\(id)\"") }
        return JSONResponse.make(document)
    }

    /// `POST /v1/contacts/{id}/points` (M1): the change checked against the rules in force (a partition this node
    /// holds; else the rules file it started with) and published to the contact's partition (K4); 202 once stored.
    func changePoints(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Routes.contactID(context)
        let (operation, change) = try await Routes.pointsChange(request)
        return try await publish([
            try TallyEngine.pointsChange(
                contact: id, operation: operation, value: change.value, group: change.group, reason: change.reason,
                rules: await node.rulesInForce ?? rules)
        ])
    }

    /// `POST /v1/contacts/{id}` (F1): the update checked — against the contact as its holder has it, when fields
    /// change — and published to the contact's partition (K4); 202 once stored.
    func updateContact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Routes.contactID(context)
        let (update, fields) = try await Routes.contactUpdate(request)
        let event = try await TallyEngine.contactUpdate(
            id, email: update.email, ownerEmail: update.ownerEmail, fields: fields
        ) { try await node.contact(id)?.state }
        return try await publish([event])
    }

    /// `GET /v1/contacts/{id}[?after=SEQ]`: the contact's document as the holder of its partition has folded it
    /// (K4).
    /// `GET /v1/changes` (L2 across the cluster, K4): the partitions' changes in stream order
    /// (``ClusterNode/changes(after:limit:)``); as Server-Sent Events, read again every second when caught up (no
    /// fold of another node wakes this one), a partition moving between nodes asked again for up to 30 s.
    func changes(_ request: Request) async throws -> Response {
        let query = try Routes.changesQuery(request)
        let node = self.node
        let page: ChangeFeedPage.Read = { position, limit in
            let page = try await node.changes(after: position, limit: limit)
            return ChangeFeedPage(changes: page.changes, next: page.next, rebuild: page.rebuild)
        }
        guard query.stream else { return JSONResponse.make(try await page(query.position, query.limit).document) }
        _ = try await page(query.position, 1)  // a bad position or limit is a 400, not a stream
        let patient: ChangeFeedPage.Read = { position, limit in
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                do {
                    return try await page(position, limit)
                } catch  where ContinuousClock.now < deadline && !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
        return Routes.streamChanges(
            from: query.position, page: patient, folded: { 0 },
            awaitFolding: { _, timeout in
                try? await Task.sleep(for: timeout)
                return false
            })
    }

    /// `GET /v1/email/preview?template=&contact=[&trigger=][&after=SEQ]` (E3): the contact as the holder of its
    /// partition has folded it (after the writes `after` names), under the rules in force in a partition this node
    /// holds, or the rules file it started with.
    func previewEmail(_ request: Request) async throws -> Response {
        let query = try Routes.emailPreviewQuery(request)
        let settled = try Self.readsYourWrites(request)
        guard let resolved = try await Self.fromHolder({ try await node.contact(query.contact, settled: settled) })
        else { throw APIError(.notFound, "unknown contact \"\(query.contact)\"") }
        return JSONResponse.make(
            try TallyEngine.previewEmail(
                template: query.template, contact: query.contact, state: resolved.state,
                rules: await node.rulesInForce ?? rules, trigger: query.trigger, configuration: configuration))
    }

    /// The admin UI across the cluster (L3): lists and the histogram from every partition, a contact's page from the
    /// holder of its partition.
    var uiSource: UISource {
        let node = self.node
        @Sendable func state(_ item: ContactListDocument.Item) -> ContactState {
            ContactState(points: item.points, groups: item.groups, tags: Set(item.tags), segments: Set(item.segments))
        }
        return UISource(
            top: { limit in
                try await node.listContacts(ContactListQuery(limit: limit)).contacts.map { ($0.contact, state($0)) }
            },
            list: { query in
                let page = try await node.listContacts(query)
                return ContactListPage(contacts: page.contacts.map { ($0.contact, state($0)) }, next: page.next)
            },
            histogram: { query in try await node.scoreHistogram(query) },
            contact: { id in
                guard let resolved = try await node.contact(id),
                    let document = try await node.explain(id, asOf: nil, limit: Explanation.defaultLimit)
                else { return nil }
                let now = try? await node.clockState(settled: false).now
                return UISource.ContactView(
                    id: resolved.id, state: resolved.state, entries: document.entries.compactMap(AuditEntry.init),
                    total: document.entriesTotal, now: now ?? nil)
            })
    }

    /// `DELETE /v1/contacts/{id}` (I8 across the cluster, K4): the contact and its aliases erased from every
    /// partition that holds them and from the stream; 200 with the report once no holder finds a residue.
    func erase(_ context: BasicRequestContext) async throws -> Response {
        let id = try Routes.contactID(context)
        do {
            return JSONResponse.make(try await node.erase(contact: id))
        } catch let error as ErasureResidueError {
            throw APIError(.internalServerError, error.description)
        } catch let error as ClusterReadError {
            throw APIError(.gatewayTimeout, "\(error)")
        }
    }

    func contact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Routes.contactID(context)
        let settled = try Self.readsYourWrites(request)
        guard let resolved = try await Self.fromHolder({ try await node.contact(id, settled: settled) }) else {
            throw APIError(.notFound, "unknown contact \"\(id)\"")
        }
        return JSONResponse.make(ContactDocument(resolved))
    }

    /// Whether a read asks to see the writes the client was answered 202 for (`?after=SEQ`, a stream sequence): it
    /// then waits until the contact's partition is copied and folded as far as the stream held it at the read —
    /// which covers every sequence the client can hold.
    static func readsYourWrites(_ request: Request) throws -> Bool {
        try Routes.afterSequence(request) != nil
    }

    /// A read from the holder of a contact's partition; 504 when a read after a write was not folded in time, 503
    /// when no node answers for the partition.
    static func fromHolder<T: Sendable>(_ read: () async throws -> T) async throws -> T {
        do {
            return try await read()
        } catch let error as ClusterReadError {
            throw APIError(.gatewayTimeout, "\(error)")
        } catch {
            throw APIError(.serviceUnavailable, "no node answers for this contact's partition now: \(error)")
        }
    }

    func health() async -> Response {
        JSONResponse.make(
            NodeStatus(node: node.settings.node, partitions: node.settings.partitions, held: await node.held))
    }

    /// `POST /v1/cluster/verify`: A5 for each partition this node holds; 200 with the report whatever the outcome.
    func verify() async throws -> Response {
        JSONResponse.make(try await node.verify())
    }

    /// `GET /v1/cluster`: nodes, leases, and the copy and fold of the partitions this node holds (K4).
    func status() async throws -> Response {
        do {
            return JSONResponse.make(try await node.status())
        } catch {
            throw APIError(.serviceUnavailable, "the cluster does not answer: \(error)")
        }
    }
}

/// Answers a route the single node has and a cluster node does not have yet with 501 rather than 404.
struct NotInClusterModeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            throw APIError(
                .notImplemented, "\(request.uri.path) is not available in cluster mode yet (Docs/cluster.md)")
        }
    }
}

/// `GET /health` of a cluster node: its name, the partitions, the ones it holds.
struct NodeStatus: Codable, Sendable {
    var status = "ok"
    var node: String
    var partitions: Int
    var held: [Int]
}

/// What an acknowledgement says about one published message.
struct PublishAckSummary {
    var sequence: UInt64
    var duplicate: Bool

    init(_ ack: PublishAck) {
        sequence = ack.sequence
        duplicate = ack.duplicate
    }
}

extension AuditEntry {
    /// An entry of an explain document as the audit trail holds it (the admin UI of a cluster node draws a contact's
    /// page from its holder's explanation); nil for an entry this release cannot read.
    init?(_ entry: ExplainDocument.Entry) {
        guard let at = Timestamp.parse(entry.at),
            let kind = Award.Kind.allCases.first(where: { $0.name == entry.kind })
        else { return nil }
        self.init(
            seq: entry.seq, eventID: entry.id, at: at, kind: kind, action: entry.action, version: entry.rulesVersion,
            group: entry.group, delta: entry.delta, scoreAfter: entry.scoreAfter, reason: entry.reason,
            origin: entry.origin)
    }
}
