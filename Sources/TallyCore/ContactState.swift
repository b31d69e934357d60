/// Everything the projections know about one contact, folded from the log.
public struct ContactState: Sendable, Equatable {
    /// The main score (S4).
    public var points: Int64
    /// Group scores by group name; a group appears once it has been awarded to.
    public var groups: [String: Int64]
    /// The once-only ledger (S3): ids of non-repeatable actions already awarded to this contact.
    public var awarded: Set<String>

    public init(points: Int64 = 0, groups: [String: Int64] = [:], awarded: Set<String> = []) {
        self.points = points
        self.groups = groups
        self.awarded = awarded
    }

    /// The main score, or a group's score when `group` is set.
    public func score(group: String?) -> Int64 {
        guard let group else { return points }
        return groups[group] ?? 0
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

/// One award of points to a contact by a point action.
public struct Award: Sendable, Equatable {
    public var action: String
    /// The group whose score changed, or nil for the main score.
    public var group: String?
    public var delta: Int64
    public var scoreAfter: Int64
    /// The reason in words, with the measured values (A1).
    public var reason: String

    public init(action: String, group: String?, delta: Int64, scoreAfter: Int64, reason: String) {
        self.action = action
        self.group = group
        self.delta = delta
        self.scoreAfter = scoreAfter
        self.reason = reason
    }
}
