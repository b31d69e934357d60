/// Everything the projections know about one contact, folded from the log.
public struct ContactState: Sendable, Equatable {
    /// The main score (S4).
    public var points: Int64
    /// Group scores by group name; a group appears once it has been awarded to.
    public var groups: [String: Int64]
    /// The once-only ledger (S3): ids of non-repeatable actions already awarded to this contact.
    public var awarded: Set<String>
    /// Page-visit state per `url.hit` pattern (keyed by ``URLPattern/key``, compared as bytes): what U3–U5 need,
    /// O(1) per pattern whatever the number of hits.
    public var visits: [ByteString: VisitStats]
    /// Trigger events already fired for this contact, as `trigger/event` (T3: at most once, ever).
    public var fired: Set<String>
    /// Tags, segments and campaign memberships, changed by trigger events (T5).
    public var tags: Set<String>
    public var segments: Set<String>
    public var campaigns: Set<String>
    /// The contact's email address and its owner's, from `contact.update` (used by email side effects).
    public var email: String?
    public var ownerEmail: String?
    /// C1/C2: per capped action id, its awards to this contact (kept only while the action has a cap).
    public var caps: [String: CapState]
    /// T9: per `rearm` trigger id that has fired for this contact, how often and whether it may fire again.
    public var rearms: [String: RearmState]
    /// F1: the contact's fields, from `contact.update`.
    public var fields: [String: FieldValue]
    /// F2: the `contact.field` actions whose condition held at the contact's last update and that were awarded,
    /// by action id, with what a reversal takes back.
    public var fieldAwards: [String: FieldAward]
    /// I1: whether the contact is known: it had a `contact.update`, a manual change or an import, or another
    /// contact was merged into it. An anonymous contact (not known) may be merged from the ingest socket.
    public var known: Bool

    public init(
        points: Int64 = 0, groups: [String: Int64] = [:], awarded: Set<String> = [],
        visits: [ByteString: VisitStats] = [:],
        fired: Set<String> = [], tags: Set<String> = [], segments: Set<String> = [], campaigns: Set<String> = [],
        email: String? = nil, ownerEmail: String? = nil, caps: [String: CapState] = [:],
        rearms: [String: RearmState] = [:], fields: [String: FieldValue] = [:], fieldAwards: [String: FieldAward] = [:],
        known: Bool = false
    ) {
        self.known = known
        self.points = points
        self.groups = groups
        self.awarded = awarded
        self.visits = visits
        self.fired = fired
        self.tags = tags
        self.segments = segments
        self.campaigns = campaigns
        self.email = email
        self.ownerEmail = ownerEmail
        self.caps = caps
        self.rearms = rearms
        self.fields = fields
        self.fieldAwards = fieldAwards
    }

    /// The main score, or a group's score when `group` is set.
    public func score(group: String?) -> Int64 {
        guard let group else { return points }
        return groups[group] ?? 0
    }

    /// Sets the main or a group score.
    public mutating func set(_ value: Int64, group: String?) {
        if let group { groups[group] = value } else { points = value }
    }

    /// Adds `delta` to the main or a group score, saturating at the 64-bit range; returns the change applied.
    @discardableResult
    public mutating func add(_ delta: Int64, group: String?) -> Int64 {
        let old = score(group: group)
        let (sum, overflow) = old.addingReportingOverflow(delta)
        let new = overflow ? (delta > 0 ? Int64.max : Int64.min) : sum
        if let group { groups[group] = new } else { points = new }
        return new &- old
    }
}

/// What the caps of one action (C1, C2) remember about its awards to one contact: bounded, whatever the number of
/// events.
public struct CapState: Sendable, Equatable {
    /// Awards of the action to the contact since it was first capped (C1).
    public var count: Int64
    /// The `at` of the latest awards in event time, ascending, at most `max_per.count` of them (C2). Empty when the
    /// action has no `max_per`.
    public var recent: [Int64]
    /// The greatest `at` of the awards ``recent`` has let go of: every forgotten award is at or before it.
    public var forgotten: Int64?

    public init(count: Int64 = 0, recent: [Int64] = [], forgotten: Int64? = nil) {
        self.count = count
        self.recent = recent
        self.forgotten = forgotten
    }

    /// Whether `max_per` allows an award at `at`: fewer than `cap.count` awards with their `at` in
    /// `(at − within, at]`. Exact when events arrive in time order. A late event whose window may hold a
    /// forgotten award (``forgotten`` is after the window's start) is refused: a cap never lets through more than
    /// it states.
    public func allows(_ cap: RateCap, at: Int64) -> Bool {
        let start = at &- cap.within  // excluded
        if let forgotten, forgotten > start { return false }
        let inWindow = recent.lazy.filter { $0 > start && $0 <= at }.count
        return Int64(inWindow) < cap.count
    }

    /// Records an award at `at`, keeping the `keep` latest times.
    public mutating func record(at: Int64, keep: Int) {
        count &+= 1
        guard keep > 0 else { return }
        let index = recent.firstIndex(where: { $0 > at }) ?? recent.endIndex
        recent.insert(at, at: index)
        let excess = recent.count - keep
        if excess > 0 {
            // No slice of `recent` is held across the removal: it would share the buffer and make it copy.
            let latest = recent[excess - 1]
            forgotten = max(forgotten ?? latest, latest)
            recent.removeFirst(excess)
        }
    }
}

/// A `rearm` trigger's record for one contact (T9).
public struct RearmState: Sendable, Equatable {
    /// How many times the trigger has fired for the contact; the n-th firing's outbox keys end in `/n` (n ≥ 2).
    public var firings: Int64
    /// Whether the contact has left the reached condition since the last firing, so that reaching it fires again.
    public var armed: Bool

    public init(firings: Int64, armed: Bool) {
        self.firings = firings
        self.armed = armed
    }
}

/// One change of a contact's score: by a point action, an operator's manual change or an import.
public struct Award: Sendable, Equatable {
    /// What changed the score.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case action = 1
        /// A `points.change` by an operator (M1).
        case manual = 2
        /// A `points.set` from a CSV import (M2).
        case imported = 3
        /// An award's expiry (D2), applied at a clock event.
        case expiry = 4
        /// A step of an award's decay (D3), applied at a clock event.
        case decay = 5
        /// A `contact.field` action (F2) awarded or reversed by a `contact.update`.
        case field = 6
        /// A merge (I4): what the merged contact's score differs from the sum of the two contacts' scores.
        case merge = 7

        /// The name `explain` shows.
        public var name: String {
            switch self {
            case .action: "action"
            case .manual: "manual"
            case .imported: "import"
            case .expiry: "expiry"
            case .decay: "decay"
            case .field: "field"
            case .merge: "merge"
            }
        }
    }

    public var kind: Kind
    /// The point action's id; `(manual)` or `(import)` for the other kinds (parentheses never occur in ids).
    public var action: String
    /// The group whose score changed, or nil for the main score.
    public var group: String?
    public var delta: Int64
    public var scoreAfter: Int64
    /// The reason in words, with the measured values (A1).
    public var reason: String
    /// How the award ages (D2, D3): the action's schedule, for an action's award; nil otherwise.
    public var aging: Aging?

    public init(
        kind: Kind = .action, action: String, group: String?, delta: Int64, scoreAfter: Int64, reason: String,
        aging: Aging? = nil
    ) {
        self.kind = kind
        self.action = action
        self.group = group
        self.delta = delta
        self.scoreAfter = scoreAfter
        self.reason = reason
        self.aging = aging
    }
}

/// A contact's history with one URL pattern, summarised: enough to decide U3–U5 without reading past hits.
public struct VisitStats: Sendable, Equatable {
    /// Matching hits so far (U3).
    public var hits: Int64
    /// The `at` of the latest matching hit in log order (U4).
    public var lastAt: Int64?
    /// Summed dwell of the matching hits whose dwell has been closed, milliseconds (U5).
    public var dwell: Int64

    public init(hits: Int64 = 0, lastAt: Int64? = nil, dwell: Int64 = 0) {
        self.hits = hits
        self.lastAt = lastAt
        self.dwell = dwell
    }

    /// Counts a matching hit at `at` (U3, U4).
    mutating func count(at: Int64) {
        hits += 1
        lastAt = at
    }
}

/// The last hit of a contact in one browser session, whose dwell the session's next hit closes (U5).
public struct OpenHit: Sendable, Equatable {
    public var at: Int64
    public var url: String

    public init(at: Int64, url: String) {
        self.at = at
        self.url = url
    }
}

/// Identifies a contact's browser session; equal, hashed and ordered by the bytes of both ids (SPEC §1), like
/// the `sessions` table's keys.
public struct SessionKey: Sendable, Hashable {
    public var contact: String
    public var session: String

    public init(contact: String, session: String) {
        self.contact = contact
        self.session = session
    }

    public static func == (a: SessionKey, b: SessionKey) -> Bool {
        ByteString.equal(a.contact, b.contact) && ByteString.equal(a.session, b.session)
    }

    public func hash(into hasher: inout Hasher) {
        ByteString.hash(contact, into: &hasher)
        ByteString.hash(session, into: &hasher)
    }
}
