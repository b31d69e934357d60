public import TallyAPI
public import TallyCore

extension ContactDocument {
    /// A contact's document (`GET /v1/contacts/{id}`, webhooks) from its folded state: sets sorted, so that the
    /// document is stable.
    public init(id: String, state: ContactState) {
        self.init(
            contact: id, points: state.points, groups: state.groups, tags: state.tags.sorted(),
            segments: state.segments.sorted(), campaigns: state.campaigns.sorted(), triggers: state.fired.sorted(),
            email: state.email, ownerEmail: state.ownerEmail)
    }
}
