/// A trigger event that fired for a contact and leaves Tally as a side effect through the outbox (T6).
public struct SideEffect: Sendable, Equatable {
    /// `<contact>/<trigger>/<event id>`: the outbox key and the idempotency key of the delivery.
    public var key: String
    public var contact: String
    public var trigger: String
    public var event: String
    public var kind: TriggerEvent.Kind

    public init(contact: String, trigger: String, event: String, kind: TriggerEvent.Kind) {
        self.key = "\(contact)/\(trigger)/\(event)"
        self.contact = contact
        self.trigger = trigger
        self.event = event
        self.kind = kind
    }
}

/// Everything one event did to one contact: the awards, the trigger events fired, the side effects to deliver.
public struct FoldOutcome: Sendable, Equatable {
    public var awards: [Award] = []
    /// Trigger events fired, as `trigger/event`, in firing order.
    public var fired: [String] = []
    public var sideEffects: [SideEffect] = []

    public init() {}
}

/// Point triggers (T1–T3, T5): which trigger events fire for a contact after its scores change.
struct TriggerEvaluator: Sendable {
    let triggers: [PointTrigger]

    /// Fires, in file order, the not-yet-fired events of every published trigger that watches a changed score
    /// (`nil` is the main score) — or every trigger when the contact is new — and whose score is reached.
    func evaluate(
        contact: String, state: inout ContactState, changed: [String?], isNew: Bool, at: Int64,
        outcome: inout FoldOutcome
    ) {
        guard isNew || !changed.isEmpty else { return }
        for trigger in triggers where isNew || changed.contains(trigger.group) {
            guard trigger.window.contains(at), state.score(group: trigger.group) >= trigger.minPoints else { continue }
            fire(trigger, contact: contact, state: &state, outcome: &outcome)
        }
    }

    /// Fires the trigger's events that have not fired for this contact yet (T3), in file order.
    func fire(_ trigger: PointTrigger, contact: String, state: inout ContactState, outcome: inout FoldOutcome) {
        for event in trigger.events {
            let firedID = "\(trigger.id)/\(event.id)"
            guard state.fired.insert(firedID).inserted else { continue }
            outcome.fired.append(firedID)
            switch event.kind {
            case .tags(let add, let remove):
                state.tags.subtract(remove)
                state.tags.formUnion(add)
            case .segments(let add, let remove):
                state.segments.subtract(remove)
                state.segments.formUnion(add)
            case .campaigns(let add, let remove):
                state.campaigns.subtract(remove)
                state.campaigns.formUnion(add)
            case .integrationPush, .emailSend, .emailSendToUser:
                outcome.sideEffects.append(
                    SideEffect(contact: contact, trigger: trigger.id, event: event.id, kind: event.kind))
            }
        }
    }
}
