/// An in-memory fold of log events into contact states and open session hits: the reference the stored
/// projections must equal (A5), and the working set the projector folds a batch into before writing it.
public struct Projection: Sendable, Equatable {
    public var contacts: [String: ContactState]
    public var openHits: [SessionKey: OpenHit]

    public init(contacts: [String: ContactState] = [:], openHits: [SessionKey: OpenHit] = [:]) {
        self.contacts = contacts
        self.openHits = openHits
    }

    /// Folds one event with `scorer`; returns its awards.
    @discardableResult
    public mutating func apply(_ event: Event, scorer: Scorer) -> [Award] {
        guard event.type == .urlHit, let session = event.session else {
            return scorer.apply(event, to: &contacts[event.contact, default: ContactState()])
        }
        let key = SessionKey(contact: event.contact, session: session)
        return scorer.apply(event, to: &contacts[event.contact, default: ContactState()], openHit: &openHits[key])
    }
}
