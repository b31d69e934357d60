/// The kinds of event the log holds.
///
/// Behaviour types arrive on the ingest socket; the others are administrative and enter only through the
/// admin socket. The raw value is the type's code in the binary log encoding and must never change.
public enum EventType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case assetDownload = 1
    case emailSend = 2
    case emailOpen = 3
    case formSubmit = 4
    case pageHit = 5
    case urlHit = 6
    /// Administrative: sets a contact's email, owner email and fields (admin socket only, F1).
    case contactUpdate = 32
    /// Administrative: an operator's change of a score (M1): ``Event/operation``, ``Event/value``,
    /// ``Event/group``, ``Event/reason``.
    case pointsChange = 33
    /// Administrative: one row of a points import (M2), which sets a score (``Event/value``, ``Event/group``,
    /// ``Event/email``; ``Event/reason`` names the file).
    case pointsSet = 34
    /// Administrative: a new rules version (A3); ``Event/text`` holds the YAML, ``Event/reason`` its source.
    /// The version number is the event's position among the log's rules publications, from 1.
    case rulesPublished = 35
    /// Administrative: the projections were rebuilt under rules version ``Event/value`` (A4): everything
    /// before this event is folded again under that version, and the fold goes on from here with it.
    case rebuild = 36
    /// Administrative, appended by the outbox delivery alone (T7): the side effect whose outbox key is
    /// ``Event/item`` was accepted by its receiver at ``Event/at``.
    case outboxDelivered = 37
    /// Administrative, outbox delivery (T7): an attempt at ``Event/item`` failed with ``Event/reason``; the next
    /// attempt is due at ``Event/value`` (epoch milliseconds).
    case outboxAttemptFailed = 38
    /// Administrative, outbox delivery (T7): ``Event/item`` is parked as failed with ``Event/reason`` (a
    /// permanent error, or the last attempt failed).
    case outboxParked = 39
    /// Administrative, `POST /v1/outbox/{key}/retry` (T7): ``Event/item`` is due again at ``Event/at``, its
    /// attempts reset.
    case outboxRetried = 40
    /// Administrative (D1): the time is ``Event/at``. Appended by the daemon every `clock_interval` and by
    /// `POST /v1/clock`; the fold's *now* is the greatest clock `at` folded, at which awards expire and decay.
    case clock = 41
    /// Identity (I2): ``Event/contact`` becomes an alias of the contact ``Event/item`` names; ``Event/value`` is 1
    /// when the merge came through the ingest socket, which may only merge an anonymous contact (I1): the fold
    /// ignores such a merge when ``Event/contact`` is known by then.
    case contactMerge = 42
    /// Erasure (I8): a contact was erased. ``Event/contact`` holds only a keyed hash of its id (hex), never the id.
    case contactErased = 43
    /// Cluster (K4): the holder of the partition published its relays (events its fold hands to other partitions,
    /// `relays` in the projections) through ``Event/value`` (the sequence number of the event that made them) and
    /// index ``Event/item``; the fold forgets them. Published by the holder alone.
    case partitionRelayed = 44

    /// The name used on the wire and in the rules file.
    public var name: String {
        switch self {
        case .assetDownload: "asset.download"
        case .emailSend: "email.send"
        case .emailOpen: "email.open"
        case .formSubmit: "form.submit"
        case .pageHit: "page.hit"
        case .urlHit: "url.hit"
        case .contactUpdate: "contact.update"
        case .pointsChange: "points.change"
        case .pointsSet: "points.set"
        case .rulesPublished: "rules.published"
        case .rebuild: "rebuild"
        case .outboxDelivered: "outbox.delivered"
        case .outboxAttemptFailed: "outbox.attempt_failed"
        case .outboxParked: "outbox.parked"
        case .outboxRetried: "outbox.retried"
        case .clock: "clock"
        case .contactMerge: "contact.merge"
        case .contactErased: "contact.erased"
        case .partitionRelayed: "partition.relayed"
        }
    }

    /// The behaviour types, in code order: what the ingest socket and point actions take.
    public static let behaviours: [EventType] = allCases.filter(\.isBehaviour)

    /// Whether the type is a behaviour (accepted on the ingest socket) rather than an administrative change.
    public var isBehaviour: Bool { rawValue < 32 }

    public var description: String { name }

    /// Looks a type up by its wire name's bytes (the ingest decoder's, which makes no `String` of it).
    public init?(nameBytes bytes: UnsafeRawBufferPointer) {
        guard let type = Self.names.value(named: bytes) else { return nil }
        self = type
    }

    /// Looks a type up by its wire name, compared as bytes.
    public init?(name: some StringProtocol) {
        guard let type = Self.names.value(named: name) else { return nil }
        self = type
    }

    private static let names = ByteNames(allCases, name: \.name)

    /// Whether events of this type name an `item` (asset, email, form or landing page id).
    public var requiresItem: Bool {
        switch self {
        case .assetDownload, .emailSend, .emailOpen, .formSubmit, .pageHit: true
        default: false
        }
    }

    /// Whether the event changes the rules version (`rules.published`, `rebuild`) rather than a contact.
    public var switchesRules: Bool { self == .rulesPublished || self == .rebuild }

    /// Whether the event records a side effect's delivery (T7) rather than a contact's behaviour or a change of
    /// it: the fold applies it to the outbox entry its ``Event/item`` names, never to the contact.
    public var isDeliveryOutcome: Bool { (37...40).contains(rawValue) }

    /// Whether the event is one contact's: a behaviour, or an administrative change of the contact (the fold loads
    /// and stores the contact it names).
    public var isContactEvent: Bool {
        isBehaviour || self == .contactUpdate || self == .pointsChange || self == .pointsSet
    }

    /// Whether the fold ends its batch after an event of this type: a rules switch, or a clock event whose due
    /// awards are aged in batches of their own (D1).
    public var endsBatch: Bool { switchesRules || self == .clock }

    /// Whether the event merges two contacts (I2).
    public var isMerge: Bool { self == .contactMerge }

    /// Whether events of this type carry a `url`.
    public var requiresURL: Bool { self == .urlHit }
}

/// One behaviour of one contact, as validated at ingest and stored in the log (SPEC §1).
public struct Event: Sendable, Hashable {
    public var type: EventType
    /// The contact's id as the site knows it, 1–128 bytes.
    public var contact: String
    /// When it happened, in milliseconds since the Unix epoch (event time, never the wall clock of a replay).
    public var at: Int64
    /// Idempotency key: a second event with the same id is acknowledged and not applied again (S6).
    public var id: String?
    /// Asset, email, form or landing page id, for the item types.
    public var item: String?
    /// The visited URL, for `url.hit`.
    public var url: String?
    /// Browser session, used for time on page.
    public var session: String?
    /// For `contact.update`: the contact's email address.
    public var email: String?
    /// For `contact.update`: the email address of the contact's owner (a salesperson).
    public var ownerEmail: String?
    /// For `points.change` and `points.set`: the group whose score changes; nil for the main score.
    public var group: String?
    /// For `points.change` and `points.set`: the operator's reason, or the imported file's name; for
    /// `rules.published`: where the version came from.
    public var reason: String?
    /// For `rules.published`: the rules file's text.
    public var text: String?
    /// For `points.change` and `points.set`: the operand; for `rebuild`: the rules version.
    public var value: Int64?
    /// For `points.change`: how ``value`` changes the score.
    public var operation: PointsOperation?
    /// For `contact.update` (F1): the fields set (or removed, value nil), sorted by name, each name once.
    public var fields: [FieldUpdate]
    /// For an event a merge moved to another cluster partition (K4): the now of the last clock event before it in the
    /// partition where it was first logged (`Int64.min` when none). Every partition gets the clock events in the same
    /// order, so this is where among them the event belongs when the partition it moved to folds it again.
    public var originClock: Int64?

    public init(
        type: EventType, contact: String, at: Int64, id: String? = nil, item: String? = nil, url: String? = nil,
        session: String? = nil, email: String? = nil, ownerEmail: String? = nil, group: String? = nil,
        reason: String? = nil, text: String? = nil, value: Int64? = nil, operation: PointsOperation? = nil,
        fields: [FieldUpdate] = [], originClock: Int64? = nil
    ) {
        self.type = type
        self.contact = contact
        self.at = at
        self.id = id
        self.item = item
        self.url = url
        self.session = session
        self.email = email
        self.ownerEmail = ownerEmail
        self.group = group
        self.reason = reason
        self.text = text
        self.value = value
        self.operation = operation
        self.fields = fields
        self.originClock = originClock
    }
}

/// How a manual change (M1) computes the new score from the old one and a value.
public enum PointsOperation: UInt8, Sendable, CaseIterable {
    case plus = 1
    case minus = 2
    case times = 3
    /// Integer division, rounding toward zero.
    case divide = 4
    case set = 5

    /// The name used by the API and the CLI.
    public var name: String {
        switch self {
        case .plus: "plus"
        case .minus: "minus"
        case .times: "times"
        case .divide: "divide"
        case .set: "set"
        }
    }

    public init?(name: some StringProtocol) {
        guard let operation = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = operation
    }

    /// The new score, saturating at the 64-bit range; nil for a division by zero.
    public func apply(to old: Int64, _ value: Int64) -> Int64? {
        func saturated(_ result: (partialValue: Int64, overflow: Bool), positive: Bool) -> Int64 {
            result.overflow ? (positive ? .max : .min) : result.partialValue
        }
        switch self {
        case .plus: return saturated(old.addingReportingOverflow(value), positive: value > 0)
        case .minus: return saturated(old.subtractingReportingOverflow(value), positive: value < 0)
        case .times: return saturated(old.multipliedReportingOverflow(by: value), positive: (old < 0) == (value < 0))
        case .divide:
            guard value != 0 else { return nil }
            return saturated(old.dividedReportingOverflow(by: value), positive: true)  // only min / -1 overflows
        case .set: return value
        }
    }
}

extension Event {
    /// A `contact.merge` (I2): `from` becomes an alias of `into`. `viaIngest` marks a merge asked on the ingest
    /// socket, which the fold applies only while `from` is anonymous (I1).
    public static func merge(from: String, into: String, at: Int64, id: String? = nil, viaIngest: Bool) -> Event {
        Event(type: .contactMerge, contact: from, at: at, id: id, item: into, value: viaIngest ? 1 : 0)
    }

    /// For a `contact.merge`: the contact merged into.
    public var mergeTarget: String? { type == .contactMerge ? item : nil }
}

/// An event together with its position in the log.
public struct LoggedEvent: Sendable, Hashable {
    /// The log sequence number, starting at 1.
    public var seq: UInt64
    public var event: Event

    public init(seq: UInt64, event: Event) {
        self.seq = seq
        self.event = event
    }
}

/// Size limits of event fields, in UTF-8 bytes (SPEC §1).
public enum EventLimits {
    public static let contact = 1...128
    public static let id = 1...128
    public static let item = 1...256
    public static let url = 1...4096
    public static let session = 1...128
    public static let email = 3...254
}

extension Event {
    /// Checks the field sizes and the URL of an event built outside the JSON decoder (the tracking pixel);
    /// the error names the field like the decoder's.
    public func validate(line: Int = 1) throws(EventDecodingError) {
        func check(_ value: String?, _ field: String, _ limit: ClosedRange<Int>) throws(EventDecodingError) {
            guard let value else { return }
            guard limit.contains(value.utf8.count) else {
                throw EventDecodingError(
                    line: line, field: field,
                    message: "must be \(limit.lowerBound)–\(limit.upperBound) bytes long, is \(value.utf8.count)")
            }
        }
        try check(contact, "contact", EventLimits.contact)
        try check(id, "id", EventLimits.id)
        try check(item, "item", EventLimits.item)
        try check(url, "url", EventLimits.url)
        try check(session, "session", EventLimits.session)
        if type.requiresItem, item == nil {
            throw EventDecodingError(line: line, field: "item", message: "is required for \(type.name)")
        }
        if type.requiresURL {
            guard let url else { throw EventDecodingError(line: line, field: "url", message: "is required") }
            guard URLPattern.isAbsolute(url) else {
                throw EventDecodingError(line: line, field: "url", message: "must be an absolute URL (scheme://…)")
            }
        }
    }
}

/// Minimal email address checks: what Tally can verify without sending mail.
public enum EmailAddress {
    /// `local@domain`, 3–254 bytes, no whitespace, control characters or angle brackets.
    public static func isValid(_ text: String) -> Bool {
        guard EventLimits.email.contains(text.utf8.count), let at = text.lastIndex(of: "@"),
            at != text.startIndex, text.index(after: at) != text.endIndex
        else { return false }
        return !text.unicodeScalars.contains {
            $0.value < 0x21 || $0 == "<" || $0 == ">" || $0.value == 0x7F || $0.properties.isWhitespace
                || $0.properties.generalCategory == .control
        }
    }
}
