/// An in-memory fold of log events into contact states: the reference the stored projections must equal (A5),
/// and the working set the projector folds a batch into before writing it.
public struct Projection: Sendable, Equatable {
    public var contacts: [String: ContactState]

    public init(contacts: [String: ContactState] = [:]) {
        self.contacts = contacts
    }

    /// Folds one event with `scorer`; returns its awards.
    @discardableResult
    public mutating func apply(_ event: Event, scorer: Scorer) -> [Award] {
        scorer.apply(event, to: &contacts[event.contact, default: ContactState()])
    }
}
