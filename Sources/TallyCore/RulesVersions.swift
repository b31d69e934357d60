/// Why a rules event in the log could not be folded.
public struct RulesVersionError: Error, Sendable, CustomStringConvertible {
    public var seq: UInt64
    public var message: String

    public init(seq: UInt64, message: String) {
        self.seq = seq
        self.message = message
    }

    public var description: String { "rules event at sequence \(seq): \(message)" }
}

/// Which rules version is in force at a point of the log (A3, A4), and what switching versions entails.
///
/// Every `rules.published` event is the next version (1, 2, …). A `rebuild` event at sequence R names a version
/// V: the projections after R are the whole log before R folded again under V (with publications in that
/// prefix counted but not applied: the state is *pinned*), then the log after R folded as usual.
public struct RulesState: Sendable {
    /// Scores events under the version in force.
    public private(set) var scorer: Scorer
    /// The number of `rules.published` events folded so far: the newest version's number.
    public private(set) var published: Int64
    /// While set, publications are counted but do not switch the version, and earlier rebuilds are ignored,
    /// until the rebuild event at this sequence number (the prefix of a rebuild).
    public private(set) var pinnedUntil: UInt64?

    /// Whether the fold is in the prefix of a rebuild.
    public var pinned: Bool { pinnedUntil != nil }

    /// The state before the first publication: no rules, version 0.
    public init(sessionTimeout: Int64) {
        scorer = Scorer(rules: RuleSet(), sessionTimeout: sessionTimeout)
        published = 0
    }

    /// The state of a rebuild's prefix: `rules` (version `version`) score everything before the rebuild event
    /// at `until` (`UInt64.max` for a dry run, which folds the whole log under one version).
    public init(sessionTimeout: Int64, pinnedTo version: Int64, rules: RuleSet, until: UInt64) {
        scorer = Scorer(rules: rules, sessionTimeout: sessionTimeout, version: version)
        published = 0
        pinnedUntil = until
    }

    /// Restores a state saved by the projector.
    public init(scorer: Scorer, published: Int64) {
        self.scorer = scorer
        self.published = published
    }

    /// Parses the rules a `rules.published` event carries.
    public static func rules(of logged: LoggedEvent, version: Int64) throws(RulesVersionError) -> RuleSet {
        guard let text = logged.event.text else {
            throw RulesVersionError(seq: logged.seq, message: "rules.published without rules text")
        }
        do {
            return try RulesParser.parse(text, file: "rules version \(version)")
        } catch {
            throw RulesVersionError(seq: logged.seq, message: "\(error)")
        }
    }

    /// Folds a `rules.published` or `rebuild` event. Returns the `trigger_existing` triggers that the new
    /// version publishes for the first time (T4), which the caller fires for every existing contact.
    ///
    /// `rulesOfVersion` looks up an earlier version's rules (a rebuild names one).
    public mutating func apply(
        _ logged: LoggedEvent, rulesOfVersion: (Int64) throws -> RuleSet
    ) throws -> [PointTrigger] {
        switch logged.event.type {
        case .rulesPublished:
            published += 1
            guard !pinned else { return [] }
            let rules = try Self.rules(of: logged, version: published)
            let existing = Self.newlyExisting(rules.triggers, previous: scorer.rules.triggers)
            scorer = Scorer(rules: rules, sessionTimeout: scorer.sessionTimeout, version: published)
            return existing
        case .rebuild:
            if let until = pinnedUntil, logged.seq < until { return [] }
            guard let version = logged.event.value, version >= 1, version <= published else {
                throw RulesVersionError(seq: logged.seq, message: "rebuild names an unknown rules version")
            }
            if !pinned || version != scorer.version {
                scorer = Scorer(
                    rules: try rulesOfVersion(version), sessionTimeout: scorer.sessionTimeout, version: version)
            }
            pinnedUntil = nil
            return []
        default:
            return []
        }
    }

    /// T4: the triggers with `trigger_existing` that `previous` did not have with the flag on.
    static func newlyExisting(_ triggers: [PointTrigger], previous: [PointTrigger]) -> [PointTrigger] {
        let before = Set(previous.filter(\.triggerExisting).map(\.id))
        return triggers.filter { $0.triggerExisting && !before.contains($0.id) }
    }
}

/// The fold of a whole log in memory, exactly as the projector folds it into the store: rules versions (A3),
/// rebuilds (A4), `trigger_existing` (T4), the audit trail (A1), the side effects fired (T6) and their delivery
/// outcomes (T7).
///
/// The reference the stored projections are checked against in tests.
public struct LogReplay: Sendable {
    public var projection = Projection()
    /// Audit entries per contact (compared as bytes), in log order.
    public var audit: [ByteString: [AuditEntry]] = [:]
    /// The keys of every side effect fired (the outbox's keys, compared as bytes).
    public var sideEffects: Set<ByteString> = []
    /// The delivery of every webhook and email fired, by outbox key (T7).
    public var deliveries: [ByteString: DeliveryStatus] = [:]
    /// Keys in ``deliveries`` that outcomes made before (or without) the fold firing them.
    public private(set) var orphans: Set<ByteString> = []
    public private(set) var rules: RulesState
    /// The fold's *now*: the greatest clock `at` folded (D1); nil before the first clock event.
    public private(set) var now: Int64?
    /// The awards waiting to expire or decay, by due time (D2–D4).
    public private(set) var aging = AgingQueue()
    /// Per contact and URL, the facts every pattern's page-visit state derives from (U2).
    public private(set) var urlVisits: [ByteString: [ByteString: URLVisit]] = [:]
    /// The contact each alias resolves to (I2).
    public private(set) var aliases: [ByteString: ByteString] = [:]
    private var versions: [Int64: RuleSet] = [:]
    /// What a merge re-folds (I3), kept while ``keepsHistories``: per contact, its events (under its resolved
    /// id); the rules events and the clocks that moved now, in log order; the rules state the replay began with.
    private let keepsHistories: Bool
    private var histories: [ByteString: [LoggedEvent]] = [:]
    private var rulesLog: [LoggedEvent] = []
    private var clocks: [(now: Int64, seq: UInt64)] = []
    private let start: RulesState
    /// Per contact, the order in which its audit entries were made (parallel to ``audit``), and the count so far.
    private var auditOrder: [ByteString: [Int]] = [:]
    private var audited = 0

    public init(sessionTimeout: Int64 = 30 * 60_000) {
        self.init(rules: RulesState(sessionTimeout: sessionTimeout))
    }

    /// A replay whose events up to the rebuild event at `until` are scored under `rules` (see ``RulesState``).
    public init(sessionTimeout: Int64 = 30 * 60_000, pinnedTo version: Int64, rules: RuleSet, until: UInt64) {
        self.init(rules: RulesState(sessionTimeout: sessionTimeout, pinnedTo: version, rules: rules, until: until))
    }

    /// A replay that starts from `rules`; one that does not keep histories cannot fold merges (a merge's own
    /// re-fold is one).
    public init(rules: RulesState, keepsHistories: Bool = true) {
        self.rules = rules
        self.start = rules
        self.keepsHistories = keepsHistories
    }

    /// Folds the whole log (from sequence 1): from the latest `rebuild` event on when there is one, with the
    /// events before it folded under the version it names.
    public static func replay(_ log: [LoggedEvent], sessionTimeout: Int64 = 30 * 60_000) throws -> LogReplay {
        guard let rebuild = log.last(where: { $0.event.type == .rebuild }), let version = rebuild.event.value else {
            var replay = LogReplay(sessionTimeout: sessionTimeout)
            for logged in log { try replay.apply(logged) }
            return replay
        }
        let publications = log.filter { $0.event.type == .rulesPublished && $0.seq < rebuild.seq }
        guard version >= 1, version <= Int64(publications.count) else {
            throw RulesVersionError(seq: rebuild.seq, message: "rebuild names an unknown rules version")
        }
        let rules = try RulesState.rules(of: publications[Int(version) - 1], version: version)
        var replay = LogReplay(sessionTimeout: sessionTimeout, pinnedTo: version, rules: rules, until: rebuild.seq)
        for logged in log { try replay.apply(logged) }
        return replay
    }

    /// Folds one event; `rulesOfVersion` finds the rules of versions the replay has not seen published.
    public mutating func apply(_ logged: LoggedEvent, rulesOfVersion: ((Int64) throws -> RuleSet)? = nil) throws {
        var event = logged.event
        if event.type.switchesRules {
            if keepsHistories { rulesLog.append(logged) }
            let known = versions
            let scorerBefore = rules.scorer
            let existing = try rules.apply(logged) { version in
                if let rules = known[version] { return rules }
                guard let rulesOfVersion else {
                    throw RulesVersionError(seq: logged.seq, message: "rules version \(version) is unknown")
                }
                return try rulesOfVersion(version)
            }
            if rules.pinned { return }
            versions[rules.scorer.version] = rules.scorer.rules
            // U2: the patterns this version introduces get every contact's whole history, at once.
            let patterns = rules.scorer.newPatterns(comparedTo: scorerBefore)
            if !patterns.isEmpty {
                for (contact, rows) in urlVisits {
                    let history = rows.map { (url: $0.key.string, visit: $0.value) }
                    projection.contacts[contact]?.backfill(patterns, from: history)
                }
            }
            guard !existing.isEmpty else { return }
            for contact in projection.contacts.keys.sorted() {  // byte order, as the store's pass
                guard var state = projection.contacts[contact] else { continue }
                let outcome = rules.scorer.fireExisting(existing, contact: contact.string, state: &state, at: event.at)
                projection.contacts[contact] = state
                record(outcome.sideEffects)
            }
            return
        }
        if event.type == .clock {
            guard event.at > now ?? .min else { return }  // D1: a clock behind now changes nothing
            now = event.at
            if keepsHistories { clocks.append((event.at, logged.seq)) }
            while let (key, waiting) = aging.popFirst(dueBy: event.at) {
                var award = waiting
                let contact = ByteString(award.contact)
                guard var state = projection.contacts[contact] else { continue }
                let outcome = rules.scorer.age(&award, seq: key.seq, state: &state)
                projection.contacts[contact] = state
                for aged in outcome.awards {
                    recordAudit(
                        AuditEntry(aged: aged, due: key.due, clock: logged.seq, version: rules.scorer.version),
                        for: contact)
                }
                record(outcome.sideEffects)
                if let next = award.key(seq: key.seq, index: key.index) { aging.insert(award, at: next) }
            }
            return
        }
        if event.type.isDeliveryOutcome {
            // An outcome for an effect this fold has not fired (a rebuild under rules that do not fire it) makes an
            // orphan, as the projector does: never sent, and giving way to a later firing unless delivered.
            if let item = event.item {
                let key = ByteString(item)
                if deliveries[key] == nil { orphans.insert(key) }
                deliveries[key, default: DeliveryStatus()].apply(event)
            }
            return
        }
        if event.type == .contactMerge {
            try merge(logged, rulesOfVersion: rulesOfVersion)
            return
        }
        guard event.type.isContactEvent else { return }
        var origin: String?
        if let canonical = aliases[ByteString(event.contact)] {
            origin = event.contact
            event.contact = canonical.string
        }
        if keepsHistories {
            histories[ByteString(event.contact), default: []].append(LoggedEvent(seq: logged.seq, event: event))
        }
        let outcome = projection.apply(event, scorer: rules.scorer)
        if let fact = outcome.urlFact {
            let contact = ByteString(event.contact)
            fact.apply(seq: logged.seq) { url in
                urlVisits[contact]?[ByteString(url)]
            } _: { url, visit in
                urlVisits[contact, default: [:]][ByteString(url)] = visit
            }
        }
        for (index, award) in outcome.awards.enumerated() {
            var entry = AuditEntry(award, of: logged, version: rules.scorer.version)
            entry.origin = origin
            recordAudit(entry, for: ByteString(event.contact))
            if let waiting = AgingAward(award, contact: event.contact, at: event.at),
                let key = waiting.key(seq: logged.seq, index: UInt32(index))
            {
                aging.insert(waiting, at: key)
            }
        }
        record(outcome.sideEffects)
    }

    /// I2, I3: merges the contacts a `contact.merge` names, as the projector does.
    private mutating func merge(_ logged: LoggedEvent, rulesOfVersion: ((Int64) throws -> RuleSet)?) throws {
        guard keepsHistories, let target = logged.event.mergeTarget else { return }
        let from = aliases[ByteString(logged.event.contact)] ?? ByteString(logged.event.contact)
        let into = aliases[ByteString(target)] ?? ByteString(target)
        let fromState = projection.contacts[from]
        guard from != into else { return }
        if logged.event.value == 1, fromState?.known == true { return }  // I1: the ingest socket merges anonymous ones
        let known = versions
        let clocks = clocks
        let result = try ContactMerge.fold(
            MergeInputs(
                merge: logged, from: from.string, into: into.string, fromState: fromState,
                intoState: projection.contacts[into],
                history: ((histories[from] ?? []) + (histories[into] ?? [])).sorted { $0.seq < $1.seq },
                rulesEvents: rulesLog, start: start,
                rulesOfVersion: { version in
                    if let rules = known[version] { return rules }
                    guard let rulesOfVersion else {
                        throw RulesVersionError(seq: logged.seq, message: "rules version \(version) is unknown")
                    }
                    return try rulesOfVersion(version)
                },
                clock: { due, after in clocks.first { $0.seq > after && $0.now >= due } },
                scorer: rules.scorer))
        projection.contacts[from] = nil
        projection.contacts[into] = result.state
        projection.openHits = projection.openHits.filter {
            let contact = ByteString($0.key.contact)
            return contact != from && contact != into
        }
        projection.openHits.merge(result.openHits) { _, new in new }
        urlVisits[from] = nil
        urlVisits[into] =
            result.urlVisits.isEmpty
            ? nil
            : Dictionary(
                uniqueKeysWithValues: result.urlVisits.map { (ByteString($0.url), $0.visit) })
        aging.removeAll(of: [from, into])
        for (key, award) in result.aging { aging.insert(award, at: key) }
        // The trails interleave in the store's key order: by sequence number, then in the order made (a clock
        // event's aging pass numbers its entries across contacts).
        let moved = zip(audit[from] ?? [], auditOrder[from] ?? []).map { entry, order in
            var entry = entry
            entry.origin = entry.origin ?? from.string
            return (entry, order)
        }
        let trail = (Array(zip(audit[into] ?? [], auditOrder[into] ?? [])) + moved).sorted {
            ($0.0.seq, $0.1) < ($1.0.seq, $1.1)
        }
        audit[from] = nil
        auditOrder[from] = nil
        audit[into] = trail.isEmpty ? nil : trail.map(\.0)
        auditOrder[into] = trail.isEmpty ? nil : trail.map(\.1)
        for entry in result.audit { recordAudit(entry, for: into) }
        histories[into] = ((histories[from] ?? []) + (histories[into] ?? [])).sorted { $0.seq < $1.seq }
        histories[from] = nil
        for (alias, contact) in aliases where contact == from { aliases[alias] = into }
        aliases[from] = into
        record(result.outcome.sideEffects)
    }

    private mutating func recordAudit(_ entry: AuditEntry, for contact: ByteString) {
        audit[contact, default: []].append(entry)
        auditOrder[contact, default: []].append(audited)
        audited += 1
    }

    private mutating func record(_ effects: [SideEffect]) {
        for effect in effects {
            let key = ByteString(effect.key)
            sideEffects.insert(key)
            guard effect.isDelivered else { continue }
            if deliveries[key] == nil {
                deliveries[key] = DeliveryStatus()
            } else if orphans.contains(key), deliveries[key]?.state != .delivered {
                orphans.remove(key)
                deliveries[key] = DeliveryStatus()
            }
        }
    }
}
