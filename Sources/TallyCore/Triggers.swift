/// A trigger event that fired for a contact and leaves Tally as a side effect through the outbox (T6).
public struct SideEffect: Sendable, Equatable {
    /// `<contact>/<trigger>/<event id>`, or `<contact>/<trigger>/<event id>/<n>` for the n-th firing (n ≥ 2) of a
    /// `rearm` trigger (T9): the outbox key and the idempotency key of the delivery.
    public var key: String
    public var contact: String
    public var trigger: String
    public var event: String
    public var kind: TriggerEvent.Kind

    public init(contact: String, trigger: String, event: String, kind: TriggerEvent.Kind, firing: Int64 = 1) {
        self.key = firing >= 2 ? "\(contact)/\(trigger)/\(event)/\(firing)" : "\(contact)/\(trigger)/\(event)"
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
    /// For a `url.hit`: what it did to the contact's URL facts (U2), which the folder keeps beside the state.
    public var urlFact: URLFact?

    public init() {}
}

/// The scores one event changed (`nil` is the main score), each with its value before the event (T8): usually none
/// or one, so the first is held inline and only a second allocates.
struct ScoreChanges {
    private var first: (group: String?, before: Int64)?
    private var more: [(group: String?, before: Int64)] = []

    init() {}

    /// One changed score.
    init(_ group: String?, before: Int64) {
        first = (group, before)
    }

    var isEmpty: Bool { first == nil }

    /// Records that `group` changed from `before`, unless an earlier award of the event changed it already.
    mutating func add(_ group: String?, before: Int64) {
        guard self.before(group) == nil else { return }
        if first == nil { first = (group, before) } else { more.append((group, before)) }
    }

    /// The score's value before the event; nil when the event did not change it.
    func before(_ group: String?) -> Int64? {
        if let first, first.group == group { return first.before }
        return more.first { $0.group == group }?.before
    }
}

/// Point triggers (T1–T3, T5, T8, T9): which trigger events fire for a contact after its scores change.
struct TriggerEvaluator: Sendable {
    let triggers: [PointTrigger]

    /// Fires, in file order, the events of every trigger that watches a changed score (`nil` is the main score) —
    /// or every trigger when the contact is new — and is reached: a `min_points` trigger while the score is at
    /// least `min_points`, a `falls_below` trigger when this event took the score from `falls_below` or more to
    /// less (T8).
    func evaluate(
        contact: String, state: inout ContactState, changed: ScoreChanges, isNew: Bool, at: Int64,
        outcome: inout FoldOutcome
    ) {
        guard isNew || !changed.isEmpty else { return }
        for trigger in triggers where isNew || changed.before(trigger.group) != nil {
            let score = state.score(group: trigger.group)
            let reached: Bool
            let left: Bool
            if let threshold = trigger.fallsBelow {
                guard let before = changed.before(trigger.group) else { continue }  // T8: no change, no fall
                reached = before >= threshold && score < threshold
                left = score >= threshold
            } else {
                reached = score >= trigger.minPoints
                left = !reached
            }
            if trigger.rearm, left {
                var record = Self.record(trigger, state)
                if record.firings > 0, !record.armed {
                    record.armed = true  // T9: out of the reached condition, whether or not the trigger is in force
                    state.rearms[trigger.id] = record
                }
            }
            guard reached, trigger.window.contains(at) else { continue }
            reach(trigger, contact: contact, state: &state, outcome: &outcome)
        }
    }

    /// The trigger is reached: fire its events that have not fired yet (T3), or, for a `rearm` trigger that is
    /// armed, fire them all again as its next firing (T9).
    func reach(_ trigger: PointTrigger, contact: String, state: inout ContactState, outcome: inout FoldOutcome) {
        guard trigger.rearm else {
            fire(trigger, firing: 1, contact: contact, state: &state, outcome: &outcome)
            return
        }
        // The state changes only when something fires: the `trigger_existing` pass stores only such contacts.
        guard !trigger.events.isEmpty else { return }
        var record = Self.record(trigger, state)
        if record.firings == 0 || record.armed {
            record.firings += 1
            record.armed = false
            state.rearms[trigger.id] = record
            fire(trigger, firing: record.firings, contact: contact, state: &state, outcome: &outcome)
        } else if record.firings == 1 {
            // Still reached after the first firing: events added to the trigger since then fire once (T3).
            let firedBefore = outcome.fired.count
            fire(trigger, firing: 1, contact: contact, state: &state, outcome: &outcome)
            if outcome.fired.count > firedBefore { state.rearms[trigger.id] = record }
        }
    }

    /// The contact's record of a `rearm` trigger. A trigger published without `rearm` first may have fired
    /// already: that was its first firing.
    private static func record(_ trigger: PointTrigger, _ state: ContactState) -> RearmState {
        state.rearms[trigger.id]
            ?? RearmState(
                firings: trigger.events.contains { state.fired.contains("\(trigger.id)/\($0.id)") } ? 1 : 0,
                armed: false)
    }

    /// Fires the trigger's events, in file order, as its `firing`-th firing. The first firing records
    /// `trigger/event` in ``ContactState/fired`` and skips events already there (T3); a later one replaces
    /// `trigger/event/<n−1>` with `trigger/event/<n>`, so the contact document shows the first and the latest
    /// firing.
    private func fire(
        _ trigger: PointTrigger, firing: Int64, contact: String, state: inout ContactState, outcome: inout FoldOutcome
    ) {
        for event in trigger.events {
            let base = "\(trigger.id)/\(event.id)"
            let firedID: String
            if firing >= 2 {
                firedID = "\(base)/\(firing)"
                if firing > 2 { state.fired.remove("\(base)/\(firing - 1)") }
                state.fired.insert(firedID)
            } else {
                firedID = base
                guard state.fired.insert(firedID).inserted else { continue }
            }
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
                    SideEffect(contact: contact, trigger: trigger.id, event: event.id, kind: event.kind, firing: firing)
                )
            }
        }
    }
}
