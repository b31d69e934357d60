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
    /// The contact's fields (F1), by name: strings and numbers.
    public var fields: [String: ContactFieldValue]
    /// For a score as of a time (A6, `?at=`): that time; the scores are then those of the audit trail up to it.
    public var at: String?
    /// The ids merged into this contact (I2), when there are any.
    public var aliases: [String]?

    public init(
        contact: String, points: Int64, groups: [String: Int64] = [:], tags: [String] = [], segments: [String] = [],
        campaigns: [String] = [], triggers: [String] = [], email: String? = nil, ownerEmail: String? = nil,
        fields: [String: ContactFieldValue] = [:], at: String? = nil, aliases: [String]? = nil
    ) {
        self.aliases = aliases
        self.contact = contact
        self.points = points
        self.groups = groups
        self.tags = tags
        self.segments = segments
        self.campaigns = campaigns
        self.triggers = triggers
        self.email = email
        self.ownerEmail = ownerEmail
        self.fields = fields
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case contact, points, groups, tags, segments, campaigns, triggers, email, fields, at, aliases
        case ownerEmail = "owner_email"
    }

    /// Decodes like the synthesized initialiser; a document without `fields` (from a release before F1) has none.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        contact = try container.decode(String.self, forKey: .contact)
        points = try container.decode(Int64.self, forKey: .points)
        groups = try container.decode([String: Int64].self, forKey: .groups)
        tags = try container.decode([String].self, forKey: .tags)
        segments = try container.decode([String].self, forKey: .segments)
        campaigns = try container.decode([String].self, forKey: .campaigns)
        triggers = try container.decode([String].self, forKey: .triggers)
        email = try container.decodeIfPresent(String.self, forKey: .email)
        ownerEmail = try container.decodeIfPresent(String.self, forKey: .ownerEmail)
        fields = try container.decodeIfPresent([String: ContactFieldValue].self, forKey: .fields) ?? [:]
        at = try container.decodeIfPresent(String.self, forKey: .at)
        aliases = try container.decodeIfPresent([String].self, forKey: .aliases)
    }
}

/// The body of `POST /v1/merge` (I2): `from` becomes an alias of `into`; `id` makes the merge idempotent (S6).
public struct MergeRequest: Codable, Sendable, Equatable {
    public var from: String
    public var into: String
    public var id: String?

    public init(from: String, into: String, id: String? = nil) {
        self.from = from
        self.into = into
        self.id = id
    }
}

/// A contact field's value on the wire (F1): a JSON string or a JSON number (read as a double).
public enum ContactFieldValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case number(Double)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "a field's value must be a string, a number or null")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let text): try container.encode(text)
        case .number(let number):
            // Integral values within ±2^53 as integers, so that 500 stays 500 whatever the encoder does.
            if number == number.rounded(), abs(number) <= 9_007_199_254_740_992 {
                try container.encode(Int64(number))
            } else {
                try container.encode(number)
            }
        }
    }

    public var description: String {
        switch self {
        case .string(let text): text
        case .number(let number):
            number == number.rounded() && abs(number) <= 9_007_199_254_740_992 ? String(Int64(number)) : String(number)
        }
    }
}

/// `POST /v1/contacts/{id}`: the addresses email side effects go to and the contact's fields (`contact.update`,
/// F1). A field whose value is `null` is removed; fields not named keep their values.
public struct ContactUpdateRequest: Codable, Sendable, Equatable {
    public var email: String?
    public var ownerEmail: String?
    /// Fields to set (a string or a number) or remove (nil, JSON `null`).
    public var fields: [String: ContactFieldValue?]?

    public init(email: String? = nil, ownerEmail: String? = nil, fields: [String: ContactFieldValue?]? = nil) {
        self.email = email
        self.ownerEmail = ownerEmail
        self.fields = fields
    }

    enum CodingKeys: String, CodingKey {
        case email, fields
        case ownerEmail = "owner_email"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(email, forKey: .email)
        try container.encodeIfPresent(ownerEmail, forKey: .ownerEmail)
        if let fields {
            // `null` for a removal: the synthesized encoding would drop nil values.
            var nested = container.nestedContainer(keyedBy: FieldName.self, forKey: .fields)
            for (name, value) in fields {
                let key = FieldName(stringValue: name)
                if let value { try nested.encode(value, forKey: key) } else { try nested.encodeNil(forKey: key) }
            }
        }
    }

    /// A field name as a coding key.
    struct FieldName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
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
