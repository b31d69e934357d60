/// A contact as `GET /v1/contacts/{id}` shows it and as webhooks carry it.
public struct ContactDocument: Codable, Sendable, Equatable {
    public var contact: String
    /// The main score.
    public var points: Int64
    /// The point groups' scores.
    public var groups: [String: Int64]
    public var tags: [String]
    public var segments: [String]
    public var campaigns: [String]
    /// The fired trigger events, as `trigger/event`.
    public var triggers: [String]
    public var email: String?
    public var ownerEmail: String?
    /// For a score as of a time (A6, `?at=`): that time; the scores are then those of the audit trail up to it.
    public var at: String?

    public init(
        contact: String, points: Int64, groups: [String: Int64] = [:], tags: [String] = [], segments: [String] = [],
        campaigns: [String] = [], triggers: [String] = [], email: String? = nil, ownerEmail: String? = nil,
        at: String? = nil
    ) {
        self.contact = contact
        self.points = points
        self.groups = groups
        self.tags = tags
        self.segments = segments
        self.campaigns = campaigns
        self.triggers = triggers
        self.email = email
        self.ownerEmail = ownerEmail
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case contact, points, groups, tags, segments, campaigns, triggers, email, at
        case ownerEmail = "owner_email"
    }
}

/// `POST /v1/contacts/{id}`: the addresses email side effects go to (`contact.update`).
public struct ContactUpdateRequest: Codable, Sendable, Equatable {
    public var email: String?
    public var ownerEmail: String?

    public init(email: String? = nil, ownerEmail: String? = nil) {
        self.email = email
        self.ownerEmail = ownerEmail
    }

    enum CodingKeys: String, CodingKey {
        case email
        case ownerEmail = "owner_email"
    }
}

/// `POST /v1/contacts/{id}/points` (M1).
public struct PointsChangeRequest: Codable, Sendable, Equatable {
    /// `plus`, `minus`, `times`, `divide` or `set`.
    public var op: String
    public var value: Int64
    /// The point group; nil for the main score.
    public var group: String?
    public var reason: String?

    public init(op: String, value: Int64, group: String? = nil, reason: String? = nil) {
        self.op = op
        self.value = value
        self.group = group
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case op, value, group, reason
    }

    /// Decodes like the synthesized initialiser, except that a `value` that is present but not a 64-bit integer
    /// (a fraction, a number out of range) is reported at the `value` key, whatever the JSON decoder says.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        op = try container.decode(String.self, forKey: .op)
        do {
            value = try container.decode(Int64.self, forKey: .value)
        } catch DecodingError.keyNotFound(let key, let context) {
            throw DecodingError.keyNotFound(key, context)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .value, in: container, debugDescription: "not an integer within the 64-bit range")
        }
        group = try container.decodeIfPresent(String.self, forKey: .group)
        reason = try container.decodeIfPresent(String.self, forKey: .reason)
    }
}
