import Foundation
import Synchronization
public import TallyAPI
public import TallyCore
public import TallyStore

/// One published rules version (A3), as `GET /v1/rules` and `tally rules` list it.
public struct RulesVersionInfo: Sendable, Equatable, Codable {
    public var version: Int64
    /// The sequence number of its `rules.published` event.
    public var seq: UInt64
    public var publishedAt: Int64
    /// Where it came from: `file config/rules.yaml` (published at start) or what the API caller named.
    public var source: String
    public var text: String

    public init(version: Int64, seq: UInt64, publishedAt: Int64, source: String, text: String) {
        self.version = version
        self.seq = seq
        self.publishedAt = publishedAt
        self.source = source
        self.text = text
    }
}

/// Why the engine refused or could not do a request, with what the caller needs to say so: the kind (the server
/// maps each kind to one HTTP status, in one place), the message, and the field or line at fault. Nothing was
/// appended.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The request is malformed or names something that does not exist in it (400).
        case invalid
        /// Not allowed on this socket (403).
        case forbidden
        /// The contact, entry or version does not exist (404).
        case notFound
        /// It contradicts the current state: a rebuild already running, a delivered entry (409).
        case conflict
        /// The log cannot take writes now (a full disk, shutting down): retry later (503).
        case unavailable
        /// The projections did not reach the awaited sequence number in time (504).
        case timedOut
    }

    public var kind: Kind
    public var message: String
    public var field: String?
    public var line: Int?

    public init(_ kind: Kind = .invalid, _ message: String, field: String? = nil, line: Int? = nil) {
        self.kind = kind
        self.message = message
        self.field = field
        self.line = line
    }

    /// An append that failed: nothing of it is in the log.
    public init(_ error: AppendError) {
        self.init(.unavailable, error.description)
    }

    public var description: String { message }
}

extension TallyEngine {
    /// Every published rules version, oldest first, with the one the live projections fold with marked by
    /// ``Projector/rules``.
    public func rulesVersions() throws -> [RulesVersionInfo] { try Self.rulesVersions(in: log) }

    /// Every rules version `log` publishes, oldest first (a cluster partition's copy as well as a node's log).
    public static func rulesVersions(in log: EventLog) throws -> [RulesVersionInfo] {
        var versions: [RulesVersionInfo] = []
        for logged in try log.rulesEvents() where logged.event.type == .rulesPublished {
            versions.append(
                RulesVersionInfo(
                    version: Int64(versions.count + 1), seq: logged.seq, publishedAt: logged.event.at,
                    source: logged.event.reason ?? "", text: logged.event.text ?? ""))
        }
        return versions
    }

    /// The rules version in force at the head of the log: the one new events are scored under. That is the newest
    /// publication, unless a later `rebuild` event pinned another version (A4); 0 before any publication. A
    /// rebuild and its dry run default to it, so that `tally rebuild` without `--version` never switches rules.
    public func versionInForce() throws -> Int64 { try Self.versionInForce(in: log) }

    /// The rules version in force at the head of `log` (see ``versionInForce()``).
    public static func versionInForce(in log: EventLog) throws -> Int64 {
        var published: Int64 = 0
        var inForce: Int64 = 0
        for logged in try log.rulesEvents() {
            switch logged.event.type {
            case .rulesPublished:
                published += 1
                inForce = published
            case .rebuild:
                inForce = logged.event.value ?? inForce
            default:
                break
            }
        }
        return inForce
    }

    /// The newest published rules, which new manual changes are checked against (groups).
    public func latestRules() throws -> RuleSet {
        guard let latest = try rulesVersions().last else { return RuleSet() }
        return try RulesParser.parse(latest.text, file: "rules version \(latest.version)")
    }

    /// A3: validates `text` and appends a `rules.published` event; the projector switches to the version at
    /// that point of the log. Returns the new version.
    public func publishRules(text: String, source: String) async throws -> RulesVersionInfo {
        try Self.validatePublication(text, source: source, configuration: configuration)
        let receipt = try await append([Self.publication(text: text, source: source)])
        guard let seq = receipt.lastSeq, let version = try rulesVersions().first(where: { $0.seq == seq }) else {
            throw EngineError(.conflict, "the publication was not appended")
        }
        logger.info(
            "rules published",
            metadata: ["tally.source": "\(source)", "tally.rules_version": "\(version.version)", "tally.seq": "\(seq)"])
        return version
    }

    /// Validates a rules text to publish against `configuration` (its integrations, its templates); its first
    /// problem as a 400 with the line.
    public static func validatePublication(
        _ text: String, source: String, configuration: Configuration
    ) throws(EngineError) {
        do {
            _ = try validate(rules: text, source: source, configuration: configuration)
        } catch let error as YAMLValidationError {
            throw EngineError(.invalid, error.description, line: error.issues.first?.line)
        } catch {
            throw EngineError(.invalid, "\(error)")
        }
    }

    /// Refuses a rules version that is not one of the `published` ones (400 naming `version`).
    public static func checkRulesVersion(_ version: Int64, published: Int64) throws(EngineError) {
        guard version >= 1, version <= published else {
            throw EngineError(.invalid, "rules version \(version) does not exist (1…\(published))", field: "version")
        }
    }

    /// A4: appends a `rebuild` event for rules `version` (by default the version in force, ``versionInForce()``);
    /// the projector rebuilds when it folds it. Refused while another rebuild runs.
    public func requestRebuild(version: Int64? = nil) async throws -> (seq: UInt64, version: Int64) {
        let published = Int64(try rulesVersions().count)
        let version = try version ?? versionInForce()
        try Self.checkRulesVersion(version, published: published)
        // One rebuild at a time: refused while one runs, or while one requested has not started yet.
        let claimed = requestingRebuild.withLock { requesting -> Bool in
            let requested = lastRebuildRequest.withLock { $0 }
            guard !requesting, !projector.isRebuilding, requested <= (projector.rebuildProgress?.seq ?? 0) else {
                return false
            }
            requesting = true
            return true
        }
        guard claimed else {
            throw EngineError(.conflict, "a rebuild is already running; wait for it to finish")
        }
        defer { requestingRebuild.withLock { $0 = false } }
        let receipt = try await append([
            Event(type: .rebuild, contact: "", at: wallClockMillis(), value: version)
        ])
        if let seq = receipt.lastSeq { lastRebuildRequest.withLock { $0 = seq } }
        guard let seq = receipt.lastSeq else { throw EngineError(.conflict, "the rebuild was not appended") }
        logger.info("rebuild requested", metadata: ["tally.seq": "\(seq)", "tally.rules_version": "\(version)"])
        return (seq, version)
    }

    /// A4 `--dry-run`: folds the whole log under rules `version` (by default the version in force) into a scratch
    /// environment and compares it with the live projections, on the blocking pool.
    public func previewRebuild(version: Int64? = nil) async throws -> ScoreComparison {
        try await blocking.run { try self.previewRebuildNow(version: version) }
    }

    private func previewRebuildNow(version: Int64?) throws -> ScoreComparison {
        let published = Int64(try rulesVersions().count)
        let version = try version ?? versionInForce()
        try Self.checkRulesVersion(version, published: published)
        return try Replays.preview(
            version: version, log: log, live: { self.projections.store }, dataDirectory: configuration.dataDirectory,
            mapSize: configuration.mapSize, sessionTimeout: configuration.sessionTimeout)
    }

    /// A5: replays the log into a scratch environment and compares, on the blocking pool.
    public func verify() async throws -> VerifyReport {
        try await blocking.run {
            try Replays.verify(
                log: self.log, live: { self.projections.store }, dataDirectory: self.configuration.dataDirectory,
                mapSize: self.configuration.mapSize, sessionTimeout: self.configuration.sessionTimeout)
        }
    }

    /// M1: checks and appends a `points.change` event.
    public func changePoints(
        contact: String, operation: PointsOperation, value: Int64, group: String?, reason: String?
    ) async throws -> AppendReceipt {
        try await append([
            Self.pointsChange(
                contact: contact, operation: operation, value: value, group: group, reason: reason,
                rules: try latestRules())
        ])
    }

    /// M1: the `points.change` event of a change by hand, checked against `rules` (the latest published); throws
    /// ``EngineError`` (invalid) for a division by zero, an unknown group or an overlong reason.
    public static func pointsChange(
        contact: String, operation: PointsOperation, value: Int64, group: String?, reason: String?, rules: RuleSet
    ) throws -> Event {
        if operation == .divide, value == 0 {
            throw EngineError(.invalid, "division by zero", field: "value")
        }
        if let group, !rules.groups.contains(group) {
            throw EngineError(.invalid, "unknown group \"\(group)\"", field: "group")
        }
        if let reason, reason.utf8.count > 1024 {
            throw EngineError(.invalid, "reason longer than 1024 bytes", field: "reason")
        }
        return Event(
            type: .pointsChange, contact: contact, at: wallClockMillis(), group: group, reason: reason, value: value,
            operation: operation)
    }

    /// A2, A6: a contact's audit trail summed up, optionally as of a time, with its newest `limit` entries; nil
    /// for an unknown contact. Memory is bounded by `limit` entries and 16 bytes per entry of the contact's trail.
    /// An alias answers for the contact it resolves to, whose trail holds the alias's entries (I4).
    public func explain(
        contact: String, asOf: Int64? = nil, limit: Int = Explanation.defaultLimit
    ) async throws
        -> (contact: ResolvedContact, explanation: Explanation)?
    {
        try await blocking.run {
            try self.projections.read { txn in try txn.explain(contact: contact, asOf: asOf, limit: limit) }
        }
    }

    /// A contact's state; nil for a contact never seen. One point read, cheap enough for the calling task.
    public func contact(_ id: String) throws -> ContactState? {
        try projections.read { txn in try txn.contact(id) }
    }

    /// The `limit` contacts with the highest main scores, highest first (one pass over the contacts, on the
    /// blocking pool).
    public func topContacts(limit: Int) async throws -> [(id: String, state: ContactState)] {
        try await blocking.run {
            var top: [(id: String, state: ContactState)] = []
            try self.projections.read { txn in
                var after: String?
                while true {
                    let batch = try txn.contacts(after: after, limit: 10_000)
                    for item in batch {
                        guard top.count < limit || item.1.points > top[top.count - 1].state.points else { continue }
                        let index = top.firstIndex { $0.state.points < item.1.points } ?? top.count
                        top.insert((item.0, item.1), at: index)
                        if top.count > limit { top.removeLast() }
                    }
                    guard batch.count == 10_000, let last = batch.last else { break }
                    after = last.0
                }
            }
            return top
        }
    }
}

extension TallyEngine {
    /// M2: imports a CSV file of scores (`contact,points[,group][,email]`): validates all of it first (a bad
    /// line imports nothing and is named), then appends one `points.set` event per row in one transaction,
    /// reading the file again rather than holding its rows. Blocking reads: call it with a spooled file.
    public func importPoints(file path: String, name: String) async throws -> AppendReceipt {
        let groups = Set(try latestRules().groups)
        let rows = try await blocking.run { try Self.readPointsCSV(path, groups: groups) { _ in } }
        guard rows > 0 else { throw EngineError(.invalid, "the file holds no rows", line: 2) }
        let at = wallClockMillis()
        return try await appending {
            try await writer.append(stream: { emit in
                _ = try Self.readPointsCSV(path, groups: groups) { row in
                    try emit(
                        Event(
                            type: .pointsSet, contact: row.contact, at: at, email: row.email, group: row.group,
                            reason: name, value: row.points))
                }
            })
        }
    }

    /// M2 for a cluster node: validates the CSV file in full (a bad line imports nothing and is named), then reads
    /// it again on `blocking` and hands its `points.set` events to `publish` in batches of `batchSize`, at most two
    /// batches read ahead. Returns the number of rows. A batch `publish` fails stops the import there: the batches
    /// before it are in the log (a `points.set` sets a score, so importing the file again is harmless).
    public static func importPoints(
        file path: String, name: String, groups: Set<String>, blocking: BlockingWork, batchSize: Int = 10_000,
        publish: ([Event]) async throws -> Void
    ) async throws -> Int {
        let rows = try await blocking.run { try readPointsCSV(path, groups: groups) { _ in } }
        guard rows > 0 else { throw EngineError(.invalid, "the file holds no rows", line: 2) }
        let at = wallClockMillis()
        let (batches, continuation) = AsyncThrowingStream.makeStream(of: [Event].self)
        let room = DispatchSemaphore(value: 2)
        let stopped = Mutex(false)
        let reading = Task {
            do {
                try await blocking.run {
                    var batch: [Event] = []
                    func hand() throws {
                        room.wait()
                        if stopped.withLock({ $0 }) { throw CancellationError() }
                        continuation.yield(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                    _ = try readPointsCSV(path, groups: groups) { row in
                        batch.append(
                            Event(
                                type: .pointsSet, contact: row.contact, at: at, email: row.email, group: row.group,
                                reason: name, value: row.points))
                        if batch.count == batchSize { try hand() }
                    }
                    if !batch.isEmpty { try hand() }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        do {
            for try await batch in batches {
                try await publish(batch)
                room.signal()
            }
        } catch {
            stopped.withLock { $0 = true }
            room.signal()
            await reading.value
            throw error
        }
        return rows
    }

    /// Reads a CSV file through ``PointsCSVReader`` in 64 KiB chunks; returns the number of rows.
    static func readPointsCSV(
        _ path: String, groups: Set<String>, _ row: (PointsImportRow) throws -> Void
    ) throws -> Int {
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw EngineError(.invalid, "cannot read the uploaded file")
        }
        defer { try? file.close() }
        var reader = PointsCSVReader(knownGroups: groups)
        do {
            while let chunk = try file.read(upToCount: 65_536), !chunk.isEmpty {
                try reader.feed(chunk, row)
            }
            try reader.finish(row)
        } catch let error as PointsCSVError {
            throw EngineError(.invalid, error.description, field: error.column, line: error.line)
        }
        return reader.rows
    }
}

extension TallyEngine {
    /// A hot backup into `directory` (absolute, new or empty): the projections first, then the log, each a
    /// compacted snapshot taken while the daemon keeps serving; `CURRENT` names the projections. The copied log
    /// is at least as far as the copied projections, so a daemon started on the copy folds the rest. Runs on the
    /// blocking pool.
    public func backup(to directory: String) async throws -> BackupReport {
        try await blocking.run { try self.backupNow(to: directory) }
    }

    private func backupNow(to directory: String) throws -> BackupReport {
        guard directory.hasPrefix("/") else {
            throw EngineError(.invalid, "the backup directory must be an absolute path", field: "dir")
        }
        let manager = FileManager.default
        if manager.fileExists(atPath: directory) {
            guard (try manager.contentsOfDirectory(atPath: directory)).isEmpty else {
                throw EngineError(.conflict, "\(directory) is not empty", field: "dir")
            }
        } else {
            do {
                try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw EngineError(.invalid, "cannot create \(directory): \(error.localizedDescription)")
            }
        }
        let store = projections.store
        let projected = try store.checkpoint()
        try manager.createDirectory(atPath: directory + "/projections", withIntermediateDirectories: false)
        try store.environment.copy(to: directory + "/projections")
        try manager.createDirectory(atPath: directory + "/log", withIntermediateDirectories: false)
        let head = try log.head()
        try log.environment.copy(to: directory + "/log")
        // mdb_env_copy2 does not sync: make the copies durable before saying they exist.
        for file in [directory + "/projections/data.mdb", directory + "/log/data.mdb", directory + "/log", directory] {
            let descriptor = open(file, O_RDONLY | O_CLOEXEC)
            if descriptor >= 0 {
                fsync(descriptor)
                close(descriptor)
            }
        }
        try ProjectionDirectories(dataDirectory: directory).makeCurrent(directory + "/projections")
        var bytes = 0
        for sub in ["log", "projections"] {
            for name in (try? manager.contentsOfDirectory(atPath: directory + "/" + sub)) ?? [] {
                let size = (try? manager.attributesOfItem(atPath: "\(directory)/\(sub)/\(name)")[.size] as? Int) ?? 0
                bytes += size
            }
        }
        return BackupReport(directory: directory, logHead: head, projected: projected, bytes: bytes)
    }
}

extension TallyEngine {
    /// The outbox's entries in key order (T6), optionally only those in `state` (`pending`, `delivered` or
    /// `failed`), at most `limit` of them.
    public func outboxEntries(state: String?, limit: Int) async throws -> [OutboxItem] {
        try await Self.outboxEntries(state: state, limit: limit, in: projections, blocking: blocking)
    }

    /// The outbox's entries in `projections` (a node's, or a cluster partition's), as ``outboxEntries(state:limit:)``.
    public static func outboxEntries(
        state: String?, limit: Int, in projections: LiveProjections, blocking: BlockingWork
    ) async throws -> [OutboxItem] {
        var wanted: OutboxEntry.State?
        if let state {
            guard let value = OutboxEntry.State(rawValue: state) else {
                throw EngineError(.invalid, "state must be pending, delivered or failed", field: "state")
            }
            wanted = value
        }
        let only = wanted
        return try await blocking.run {
            try projections.read { txn in try txn.outboxEntries(state: only, limit: limit) }
        }.map(OutboxItem.init)
    }

    /// Puts a failed (or pending) entry back in the queue, due now (an `outbox.retried` event); see
    /// ``OutboxDelivery/retry(key:)``.
    public func retryOutbox(key: String) async throws -> OutboxItem {
        OutboxItem(try await outbox.retry(key: key))
    }
}

extension RebuildPreview {
    /// A dry run's comparison as the API shows it (A4).
    public init(_ comparison: ScoreComparison, version: Int64) {
        self.init(
            rulesVersion: version, checkpoint: comparison.checkpoint, contacts: comparison.contacts,
            changed: comparison.changedCount, oldTotal: comparison.oldTotal, newTotal: comparison.newTotal,
            changes: comparison.changes.map {
                .init(
                    contact: $0.contact, oldPoints: $0.oldPoints, newPoints: $0.newPoints, oldGroups: $0.oldGroups,
                    newGroups: $0.newGroups)
            },
            newlyReached: comparison.newlyReachedCount,
            reached: comparison.newlyReached.map { .init(contact: $0.contact, triggers: $0.fired) })
    }
}

extension OutboxItem {
    /// An outbox entry as the API shows it.
    public init(_ entry: OutboxEntry) {
        self.init(
            key: entry.key, kind: entry.kindName, contact: entry.contact, trigger: entry.trigger, event: entry.event,
            state: entry.state.rawValue, attempts: entry.attempts,
            dueAt: entry.state == .pending ? Timestamp.format(entry.dueAt) : nil, lastError: entry.lastError,
            firedSeq: entry.firedSeq, deliveredAt: entry.deliveredAt.map(Timestamp.format))
    }
}
