/// One published rules version (A3), as `GET /v1/rules` lists it and `PUT /v1/rules` answers.
public struct RulesVersionDocument: Codable, Sendable, Equatable {
    public var version: Int64
    /// The sequence number of its `rules.published` event.
    public var seq: UInt64
    /// RFC 3339.
    public var publishedAt: String
    /// Where it came from: `file config/rules.yaml`, `api`, `api: NAME`.
    public var source: String
    /// Whether the live projections fold new events with it.
    public var inForce: Bool
    /// The YAML, with `?version=N` only.
    public var text: String?

    public init(version: Int64, seq: UInt64, publishedAt: String, source: String, inForce: Bool, text: String?) {
        self.version = version
        self.seq = seq
        self.publishedAt = publishedAt
        self.source = source
        self.inForce = inForce
        self.text = text
    }

    enum CodingKeys: String, CodingKey {
        case version, seq, source, text
        case publishedAt = "published_at"
        case inForce = "in_force"
    }
}

/// `GET /v1/rules`: every published version, oldest first.
public struct RulesVersionList: Codable, Sendable, Equatable {
    public var versions: [RulesVersionDocument]

    public init(versions: [RulesVersionDocument]) {
        self.versions = versions
    }
}

/// `POST /v1/rebuild` without `dry_run`: the `rebuild` event appended (A4).
public struct RebuildStarted: Codable, Sendable, Equatable {
    public var seq: UInt64
    public var rulesVersion: Int64
    /// In a cluster: the `rebuild` event's `at`, which each partition's progress names (`requested_at`).
    public var requestedAt: Int64?

    public init(seq: UInt64, rulesVersion: Int64, requestedAt: Int64? = nil) {
        self.seq = seq
        self.rulesVersion = rulesVersion
        self.requestedAt = requestedAt
    }

    enum CodingKeys: String, CodingKey {
        case seq
        case rulesVersion = "rules_version"
        case requestedAt = "requested_at"
    }
}

/// `POST /v1/rebuild?dry_run=true` (A4): what a rebuild under a version would change.
public struct RebuildPreview: Codable, Sendable, Equatable {
    /// One contact whose scores would change.
    public struct Change: Codable, Sendable, Equatable {
        public var contact: String
        public var oldPoints: Int64
        public var newPoints: Int64
        public var oldGroups: [String: Int64]
        public var newGroups: [String: Int64]

        public init(
            contact: String, oldPoints: Int64, newPoints: Int64, oldGroups: [String: Int64], newGroups: [String: Int64]
        ) {
            self.contact = contact
            self.oldPoints = oldPoints
            self.newPoints = newPoints
            self.oldGroups = oldGroups
            self.newGroups = newGroups
        }

        enum CodingKeys: String, CodingKey {
            case contact
            case oldPoints = "old_points"
            case newPoints = "new_points"
            case oldGroups = "old_groups"
            case newGroups = "new_groups"
        }
    }

    /// One contact that would newly reach trigger events.
    public struct Reached: Codable, Sendable, Equatable {
        public var contact: String
        /// `trigger/event`.
        public var triggers: [String]

        public init(contact: String, triggers: [String]) {
            self.contact = contact
            self.triggers = triggers
        }
    }

    public var dryRun = true
    public var rulesVersion: Int64
    /// The log sequence number both sides were compared at.
    public var checkpoint: UInt64
    public var contacts: Int
    public var changed: Int
    public var oldTotal: Int64
    public var newTotal: Int64
    /// The changes, at most a bounded number of them.
    public var changes: [Change]
    public var newlyReached: Int
    public var reached: [Reached]

    public init(
        rulesVersion: Int64, checkpoint: UInt64, contacts: Int, changed: Int, oldTotal: Int64, newTotal: Int64,
        changes: [Change], newlyReached: Int, reached: [Reached]
    ) {
        self.rulesVersion = rulesVersion
        self.checkpoint = checkpoint
        self.contacts = contacts
        self.changed = changed
        self.oldTotal = oldTotal
        self.newTotal = newTotal
        self.changes = changes
        self.newlyReached = newlyReached
        self.reached = reached
    }

    enum CodingKeys: String, CodingKey {
        case checkpoint, contacts, changed, changes, reached
        case dryRun = "dry_run"
        case rulesVersion = "rules_version"
        case oldTotal = "old_total"
        case newTotal = "new_total"
        case newlyReached = "newly_reached"
    }
}

/// `tally rules check FILE --json`: whether a rules file is valid, what it holds, or every problem with its line.
public struct RulesCheckReport: Codable, Sendable, Equatable {
    /// One problem of the file.
    public struct Problem: Codable, Sendable, Equatable {
        public var line: Int
        public var message: String

        public init(line: Int, message: String) {
            self.line = line
            self.message = message
        }
    }

    public var valid: Bool
    public var groups: Int?
    public var actions: Int?
    public var triggers: Int?
    public var errors: [Problem]?

    public init(valid: Bool, groups: Int? = nil, actions: Int? = nil, triggers: Int? = nil, errors: [Problem]? = nil) {
        self.valid = valid
        self.groups = groups
        self.actions = actions
        self.triggers = triggers
        self.errors = errors
    }
}
