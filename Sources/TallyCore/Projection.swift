/// An in-memory fold of log events into contact states and open session hits: the reference the stored
/// projections must equal (A5), and the working set the projector folds a batch into before writing it.
public struct Projection: Sendable, Equatable {
    /// Contact states by contact id, compared as bytes (SPEC §1).
    public var contacts: [ByteString: ContactState]
    public var openHits: [SessionKey: OpenHit]

    public init(contacts: [ByteString: ContactState] = [:], openHits: [SessionKey: OpenHit] = [:]) {
        self.contacts = contacts
        self.openHits = openHits
    }

    /// Folds one event with `scorer`. A contact absent from ``contacts`` is new (T2): a caller that folds a
    /// batch loads the contacts it already knows first.
    @discardableResult
    public mutating func apply(_ event: Event, scorer: Scorer) -> FoldOutcome {
        // Mutated in place through the dictionary's subscript (one lookup, no copy of the state's sets and maps).
        let contact = ByteString(event.contact)
        let isNew = contacts.index(forKey: contact) == nil
        guard event.type == .urlHit, let session = event.session else {
            var none: OpenHit?
            return scorer.fold(
                event, into: &contacts[contact, default: ContactState()], openHit: &none, isNew: isNew)
        }
        let key = SessionKey(contact: event.contact, session: session)
        return scorer.fold(
            event, into: &contacts[contact, default: ContactState()], openHit: &openHits[key], isNew: isNew)
    }
}
