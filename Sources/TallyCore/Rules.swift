/// One published set of point actions, point triggers and groups (SPEC §2).
public struct RuleSet: Sendable, Equatable {
    /// Point groups: extra scores beside the main one.
    public var groups: [String]
    /// Point actions in file order (S5).
    public var actions: [PointAction]
    /// Point triggers in file order.
    public var triggers: [PointTrigger]

    public init(groups: [String] = [], actions: [PointAction] = [], triggers: [PointTrigger] = []) {
        self.groups = groups
        self.actions = actions
        self.triggers = triggers
    }

    /// The actions that apply to events of `type` (S1), in file order.
    public func actions(for type: EventType) -> [PointAction] { actions.filter { $0.type == type } }
}

/// When a rule is in force: `published` and `at` in `[publishUp, publishDown)` (S2, T1).
public struct PublishWindow: Sendable, Equatable {
    public var published: Bool
    /// Inclusive start, epoch milliseconds.
    public var up: Int64?
    /// Exclusive end, epoch milliseconds.
    public var down: Int64?

    public init(published: Bool = true, up: Int64? = nil, down: Int64? = nil) {
        self.published = published
        self.up = up
        self.down = down
    }

    /// Whether the rule is in force at event time `at`.
    public func contains(_ at: Int64) -> Bool {
        guard published else { return false }
        if let up, at < up { return false }
        if let down, at >= down { return false }
        return true
    }
}

/// The conditions of a `url.hit` action beyond the URL pattern (U3–U6), all optional.
public struct URLConditions: Sendable, Equatable {
    public var pageHits: Int?
    /// Milliseconds.
    public var returnsWithin: Int64?
    /// Milliseconds.
    public var returnsAfter: Int64?
    /// Milliseconds.
    public var timeSpent: Int64?

    public init(pageHits: Int? = nil, returnsWithin: Int64? = nil, returnsAfter: Int64? = nil, timeSpent: Int64? = nil)
    {
        self.pageHits = pageHits
        self.returnsWithin = returnsWithin
        self.returnsAfter = returnsAfter
        self.timeSpent = timeSpent
    }

    public var isEmpty: Bool { self == URLConditions() }
}

/// A point action: the points a behaviour earns (S1–S6).
public struct PointAction: Sendable, Equatable {
    public var id: String
    public var name: String
    public var description: String
    public var category: String
    public var type: EventType
    public var delta: Int64
    public var repeatable: Bool
    /// For `url.hit`: which URLs count.
    public var url: URLPattern?
    public var conditions: URLConditions
    /// For the item types: the item ids that count, compared as bytes; empty means any (S1).
    public var items: Set<ByteString>
    /// Award to this group's score instead of the main score (S4).
    public var group: String?
    public var window: PublishWindow
    /// C1 `max_awards`: at most this many awards per contact, ever (repeatable actions only).
    public var maxAwards: Int64?
    /// C2 `max_per`: at most `count` awards per contact whose `at` lies in any window of `within` ending at an
    /// event's time (repeatable actions only).
    public var maxPer: RateCap?
    /// F2: for a `contact.field` action (``type`` is `contact.update`), the condition on the contact's fields.
    public var field: FieldCondition?
    /// D2 `expires_after` or D3 `decay`: how the action's awards age.
    public var aging: Aging?

    /// The type as the rules file names it: `contact.field` for a fit score, the event type otherwise.
    public var typeName: String { field == nil ? type.name : "contact.field" }

    /// Whether the contact state keeps a ``CapState`` for this action (C1, C2).
    public var isCapped: Bool { maxAwards != nil || maxPer != nil }

    public init(
        id: String, name: String = "", description: String = "", category: String = "", type: EventType,
        delta: Int64, repeatable: Bool = false, url: URLPattern? = nil, conditions: URLConditions = URLConditions(),
        items: Set<ByteString> = [], group: String? = nil, window: PublishWindow = PublishWindow(),
        maxAwards: Int64? = nil, maxPer: RateCap? = nil, field: FieldCondition? = nil, aging: Aging? = nil
    ) {
        self.id = id
        self.name = name
        self.description = description
        self.category = category
        self.type = type
        self.delta = delta
        self.repeatable = repeatable
        self.url = url
        self.conditions = conditions
        self.items = items
        self.group = group
        self.window = window
        self.maxAwards = maxAwards
        self.maxPer = maxPer
        self.field = field
        self.aging = aging
    }
}

/// C2 `max_per: {count, within}`: an event at `t` is awarded only when fewer than `count` awards of the action
/// for the contact have their `at` in `(t − within, t]`.
public struct RateCap: Sendable, Equatable {
    /// At least 1.
    public var count: Int64
    /// Milliseconds, at least 1.
    public var within: Int64

    public init(count: Int64, within: Int64) {
        self.count = count
        self.within = within
    }
}

/// A point trigger: what happens to a contact whose score reaches `minPoints` (SPEC §4), or falls below
/// `fallsBelow` (T8).
public struct PointTrigger: Sendable, Equatable {
    public var id: String
    public var name: String
    /// `min_points`: reached while the watched score is at least this. Ignored when ``fallsBelow`` is set.
    public var minPoints: Int64
    /// T8 `falls_below`: reached when a change takes the watched score from this or more to less than this.
    public var fallsBelow: Int64?
    /// Watch this group's score instead of the main score.
    public var group: String?
    public var triggerExisting: Bool
    /// T9 `rearm`: fire again each time the contact leaves the reached condition and reaches it again.
    public var rearm: Bool
    public var window: PublishWindow
    public var events: [TriggerEvent]

    public init(
        id: String, name: String = "", minPoints: Int64 = 0, fallsBelow: Int64? = nil, group: String? = nil,
        triggerExisting: Bool = false, rearm: Bool = false, window: PublishWindow = PublishWindow(),
        events: [TriggerEvent] = []
    ) {
        self.id = id
        self.name = name
        self.minPoints = minPoints
        self.fallsBelow = fallsBelow
        self.group = group
        self.triggerExisting = triggerExisting
        self.rearm = rearm
        self.window = window
        self.events = events
    }
}

/// One thing a trigger does when reached, fired at most once per contact (T3).
public struct TriggerEvent: Sendable, Equatable {
    /// What the trigger event does.
    public enum Kind: Sendable, Equatable {
        case tags(add: [String], remove: [String])
        case segments(add: [String], remove: [String])
        case campaigns(add: [String], remove: [String])
        case integrationPush(integration: String)
        case emailSend(email: String)
        case emailSendToUser(email: String, toOwner: Bool, to: [String])
    }

    public var id: String
    public var kind: Kind

    public init(id: String, kind: Kind) {
        self.id = id
        self.kind = kind
    }
}
