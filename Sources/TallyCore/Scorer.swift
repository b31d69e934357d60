/// The scoring fold: applies one event to one contact's state under one rule set (S1–S6).
///
/// Pure: no I/O and no clock. Time is the event's `at`, so a replay of the same log under the same rules gives
/// the same state and the same awards.
public struct Scorer: Sendable {
    public let rules: RuleSet
    private let actionsByType: [EventType: [PointAction]]

    public init(rules: RuleSet) {
        self.rules = rules
        self.actionsByType = Dictionary(grouping: rules.actions, by: \.type)
    }

    /// Applies `event` to `state` and returns the awards it earned, in file order (S5).
    public func apply(_ event: Event, to state: inout ContactState) -> [Award] {
        var awards: [Award] = []
        for action in actionsByType[event.type] ?? [] {
            guard action.delta != 0, action.window.contains(event.at) else { continue }  // S2; delta 0 awards nothing
            guard action.repeatable || !state.awarded.contains(action.id) else { continue }  // S3
            guard let reason = qualifies(event, action) else { continue }  // S1, U1
            if !action.repeatable { state.awarded.insert(action.id) }
            let applied = state.add(action.delta, group: action.group)  // S4
            awards.append(
                Award(
                    action: action.id, group: action.group, delta: applied,
                    scoreAfter: state.score(group: action.group), reason: reason))
        }
        return awards
    }

    /// Whether `event` satisfies the action's conditions; the reason in words when it does.
    private func qualifies(_ event: Event, _ action: PointAction) -> String? {
        if event.type.requiresItem {
            let item = event.item ?? ""
            guard action.items.isEmpty || action.items.contains(item) else { return nil }
            return "\(event.type.name) of \"\(item)\""
        }
        guard let url = event.url, let pattern = action.url, pattern.matches(url) else { return nil }
        return "visited \(url) (matches \(pattern.text))"
    }
}
