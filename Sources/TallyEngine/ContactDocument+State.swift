public import TallyAPI
public import TallyCore

extension ContactDocument {
    /// A contact's document (`GET /v1/contacts/{id}`, webhooks) from its folded state: sets sorted, so that the
    /// document is stable.
    public init(id: String, state: ContactState) {
        self.init(
            contact: id, points: state.points, groups: state.groups, tags: state.tags.sorted(),
            segments: state.segments.sorted(), campaigns: state.campaigns.sorted(), triggers: state.fired.sorted(),
            email: state.email, ownerEmail: state.ownerEmail, fields: state.fields.mapValues(ContactFieldValue.init))
    }

    /// The document reads of a contact or of one of its aliases answer (I2).
    public init(_ contact: ResolvedContact) {
        self.init(id: contact.id, state: contact.state)
        aliases = contact.aliases.isEmpty ? nil : contact.aliases
    }
}

extension ContactListDocument.Item {
    /// A contact as a list shows it (L1): tags and segments in byte order.
    public init(id: String, state: ContactState) {
        self.init(
            contact: id, points: state.points, groups: state.groups, tags: state.tags.sorted(by: ByteString.precedes),
            segments: state.segments.sorted(by: ByteString.precedes))
    }
}

extension ContactFieldValue {
    /// A folded field's value on the wire.
    public init(_ value: FieldValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .number(let number): self = .number(number)
        }
    }
}

extension FieldValue {
    /// A field's value from the wire.
    public init(_ value: ContactFieldValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .number(let number): self = .number(number)
        }
    }
}
