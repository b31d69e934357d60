public import TallyCore

/// A contact as the API shows it (`GET /v1/contacts/{id}`) and as webhooks carry it: scores, tags, segments,
/// campaigns, the fired trigger events (`trigger/event`) and the addresses.
public struct ContactView: Encodable, Sendable {
    public var contact: String
    public var points: Int64
    public var groups: [String: Int64]
    public var tags: [String]
    public var segments: [String]
    public var campaigns: [String]
    public var triggers: [String]
    public var email: String?
    public var owner_email: String?
    /// For a score as of a time (A6): that time; the scores are then those of the audit trail up to it.
    public var at: String?

    public init(id: String, state: ContactState) {
        contact = id
        points = state.points
        groups = state.groups
        tags = state.tags.sorted()
        segments = state.segments.sorted()
        campaigns = state.campaigns.sorted()
        triggers = state.fired.sorted()
        email = state.email
        owner_email = state.ownerEmail
    }
}
