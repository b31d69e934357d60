internal import Yams

/// Reads and validates a rules file (SPEC §2), reporting every problem with its line.
public enum RulesParser {
    /// Valid action, trigger, group and trigger-event ids: `[a-z0-9-_.]{1,64}`.
    public static func isValidID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count)
            && id.utf8.allSatisfy {
                (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || "-_.".utf8.contains($0)
            }
    }

    /// Parses `text`; `file` names it in error messages.
    public static func parse(_ text: String, file: String = "rules.yaml") throws(YAMLValidationError) -> RuleSet {
        let sink = YAMLIssueSink()
        var rules = RuleSet()
        if let root = sink.compose(text), let top = YAMLMapReader(root, context: "rules", sink: sink) {
            rules = read(top, sink: sink)
            top.finish()
        } else if sink.issues.isEmpty {
            // An empty file is a valid, empty rule set.
        }
        try sink.check(file: file)
        return rules
    }

    private static func read(_ top: YAMLMapReader, sink: YAMLIssueSink) -> RuleSet {
        var rules = RuleSet()
        if let groupsNode = top.value("groups") {
            rules.groups = top.stringList("groups") ?? []
            var seen: Set<String> = []
            for group in rules.groups {
                if !isValidID(group) { top.report(groupsNode, "group \"\(group)\" must match [a-z0-9-_.]{1,64}") }
                if !seen.insert(group).inserted { top.report(groupsNode, "group \"\(group)\" listed twice") }
            }
        }
        let groups = Set(rules.groups)
        var actionIDs: Set<String> = []
        for (index, node) in (top.sequence("actions") ?? []).enumerated() {
            guard let map = YAMLMapReader(node, context: "actions[\(index)]", sink: sink) else { continue }
            if let action = action(map, groups: groups, sink: sink) {
                if !actionIDs.insert(action.id).inserted {
                    map.report(map.node, "action id \"\(action.id)\" is used twice")
                }
                rules.actions.append(action)
            }
            map.finish()
        }
        var triggerIDs: Set<String> = []
        for (index, node) in (top.sequence("triggers") ?? []).enumerated() {
            guard let map = YAMLMapReader(node, context: "triggers[\(index)]", sink: sink) else { continue }
            if let trigger = trigger(map, groups: groups, sink: sink) {
                if !triggerIDs.insert(trigger.id).inserted {
                    map.report(map.node, "trigger id \"\(trigger.id)\" is used twice")
                }
                rules.triggers.append(trigger)
            }
            map.finish()
        }
        return rules
    }

    private static func id(_ map: YAMLMapReader) -> String? {
        guard let id = map.string("id", required: true) else { return nil }
        guard isValidID(id) else {
            map.report(map.value("id"), "id \"\(id)\" must match [a-z0-9-_.]{1,64}")
            return nil
        }
        return id
    }

    private static func group(_ map: YAMLMapReader, groups: Set<String>) -> String?? {
        guard let group = map.string("group") else { return .some(nil) }
        guard groups.contains(group) else {
            map.report(map.value("group"), "group \"\(group)\" is not declared in \"groups\"")
            return nil
        }
        return group
    }

    private static func window(_ map: YAMLMapReader) -> PublishWindow {
        let window = PublishWindow(
            published: map.bool("published") ?? true, up: map.timestamp("publish_up"),
            down: map.timestamp("publish_down"))
        if let up = window.up, let down = window.down, down <= up {
            map.report(map.value("publish_down"), "\"publish_down\" must be after \"publish_up\"")
        }
        return window
    }

    private static func action(_ map: YAMLMapReader, groups: Set<String>, sink: YAMLIssueSink) -> PointAction? {
        let id = id(map)
        let typeName = map.string("type", required: true)
        let isField = typeName == "contact.field"
        let type =
            isField ? .contactUpdate : typeName.flatMap { EventType(name: $0) }.flatMap { $0.isBehaviour ? $0 : nil }
        if let typeName, type == nil {
            let names = (EventType.behaviours.map(\.name) + ["contact.field"]).joined(separator: ", ")
            map.report(map.value("type"), "unknown type \"\(typeName)\" (one of \(names))")
        }
        let delta = map.integer("delta", in: Int64(Int32.min)...Int64(Int32.max), required: true)
        let repeatable = map.bool("repeatable") ?? false
        let group = group(map, groups: groups)
        let window = window(map)
        let name = map.string("name") ?? ""
        let description = map.string("description") ?? ""
        let category = map.string("category") ?? ""
        let (maxAwards, maxPer) = caps(map, repeatable: repeatable, sink: sink)
        let aging = aging(map, isField: isField, sink: sink)

        var url: URLPattern?
        var conditions = URLConditions()
        var items: Set<ByteString> = []
        var field: FieldCondition?
        if isField {
            field = fieldCondition(map, repeatable: repeatable)
            for key in ["url", "page_hits", "returns_within", "returns_after", "time_spent", "items"]
            where map.value(key) != nil {
                map.report(map.value(key), "\"\(key)\" does not apply to contact.field actions")
            }
        } else {
            for key in FieldKeys.all where map.value(key) != nil {
                map.report(map.value(key), "\"\(key)\" applies to contact.field actions only")
            }
        }
        if isField {
            // Judged above.
        } else if type == .urlHit {
            if let text = map.string("url", required: true) {
                if text.isEmpty { map.report(map.value("url"), "\"url\" must not be empty") }
                if text.contains("#"), !text.contains("?") {
                    map.report(
                        map.value("url"),
                        "\"url\" has a # but no ?: the URL's query and fragment are dropped before matching (U1), so "
                            + "it could never match; write ?*# to match fragments")
                }
                url = URLPattern(text)
            }
            conditions.pageHits = map.integer("page_hits", in: 1...Int64(Int32.max)).map { Int($0) }
            conditions.returnsWithin = map.duration("returns_within")
            conditions.returnsAfter = map.duration("returns_after")
            conditions.timeSpent = map.duration("time_spent")
            if map.value("items") != nil, !(map.stringList("items") ?? []).isEmpty {
                map.report(map.value("items"), "\"items\" applies to item types, not url.hit")
            }
        } else if type != nil {
            items = Set((map.stringList("items") ?? []).map { ByteString($0) })
            for key in ["url", "page_hits", "returns_within", "returns_after", "time_spent"]
            where map.value(key) != nil {
                map.report(map.value(key), "\"\(key)\" applies to url.hit actions only")
            }
        } else {
            // The type is already reported; mark the type-specific keys as read so they are not reported too.
            for key in ["url", "page_hits", "returns_within", "returns_after", "time_spent", "items"] {
                _ = map.value(key)
            }
        }
        guard let id, let type, let delta, let group else { return nil }
        if isField, field == nil { return nil }
        return PointAction(
            id: id, name: name, description: description, category: category, type: type, delta: delta,
            repeatable: repeatable, url: url, conditions: conditions, items: items, group: group, window: window,
            maxAwards: maxAwards, maxPer: maxPer, field: field, aging: aging)
    }

    /// The most steps a `decay` may have.
    static let maxDecaySteps = 16

    /// D2 `expires_after: D` or D3 `decay: [{after, keep}, …]` (not both, and not on a fit score, whose award
    /// lasts exactly while its condition holds).
    private static func aging(_ map: YAMLMapReader, isField: Bool, sink: YAMLIssueSink) -> Aging? {
        let expiresAfter = map.duration("expires_after")
        var steps: [Aging.Step]?
        if let node = map.value("decay") {
            if case .sequence(let sequence) = node, !sequence.isEmpty, sequence.count <= maxDecaySteps {
                var parsed: [Aging.Step] = []
                for (index, element) in sequence.enumerated() {
                    guard let stepMap = YAMLMapReader(element, context: "\(map.context).decay[\(index)]", sink: sink)
                    else { continue }
                    let after = stepMap.duration("after")
                    if stepMap.value("after") == nil { stepMap.report(nil, "\"after\" is required") }
                    let keep = stepMap.integer("keep", in: 0...100, required: true)
                    if let after, let keep {
                        if let previous = parsed.last, after <= previous.after || keep >= previous.keep {
                            stepMap.report(
                                element,
                                "each decay step must come later and keep less than the one before (\"after\" "
                                    + "increasing, \"keep\" decreasing)")
                        }
                        parsed.append(Aging.Step(after: after, keep: keep))
                    }
                    stepMap.finish()
                }
                if parsed.count == sequence.count { steps = parsed }
            } else {
                map.report(
                    node, "\"decay\" must be a list of 1–\(maxDecaySteps) steps such as {after: 30d, keep: 50}")
            }
        }
        if isField {
            for key in ["expires_after", "decay"] where map.value(key) != nil {
                map.report(
                    map.value(key),
                    "\"\(key)\" does not apply to contact.field actions: a fit score lasts while its condition holds")
            }
            return nil
        }
        if expiresAfter != nil, steps != nil {
            map.report(map.value("decay"), "an action has \"decay\" or \"expires_after\", not both")
            return nil
        }
        if let expiresAfter { return .expiry(after: expiresAfter) }
        return steps.map { Aging(kind: .decay, steps: $0) }
    }

    /// The keys of a `contact.field` action's condition.
    private enum FieldKeys {
        static let operators = ["equals", "in", "gte", "lte", "contains", "exists"]
        static let all = ["field"] + operators
    }

    /// F2: `field` and exactly one operator. A plain YAML scalar that reads as a number is a number; a quoted one
    /// is a string (`equals: 500` matches the number 500, `equals: "500"` the string).
    private static func fieldCondition(_ map: YAMLMapReader, repeatable: Bool) -> FieldCondition? {
        if repeatable {
            map.report(
                map.value("repeatable"),
                "\"repeatable\" does not apply to contact.field actions: a fit score is awarded while its condition "
                    + "holds, at most once at a time")
        }
        let name = map.string("field", required: true)
        if let name, !FieldLimits.isValidName(name) {
            map.report(map.value("field"), "field name \"\(name)\" must match [a-z0-9_.-]{1,64}")
        }
        let given = FieldKeys.operators.filter { map.value($0) != nil }
        guard given.count == 1, let key = given.first, let node = map.value(key) else {
            let list = FieldKeys.operators.joined(separator: ", ")
            if given.isEmpty {
                map.report(nil, "a contact.field action needs one of \(list)")
            } else {
                map.report(
                    map.value(given[1]), "give exactly one of \(list); this action has \(given.joined(separator: ", "))"
                )
            }
            return nil
        }
        let test: FieldCondition.Test?
        switch key {
        case "equals":
            test = fieldValue(node, key, map).map { .equals($0) }
        case "in":
            if case .sequence(let sequence) = node, !sequence.isEmpty {
                let values = sequence.compactMap { fieldValue($0, key, map) }
                test = values.count == sequence.count ? .oneOf(values) : nil
            } else {
                map.report(node, "\"in\" must be a non-empty list of strings and numbers")
                test = nil
            }
        case "gte", "lte":
            if case .number(let bound)? = fieldValue(node, key, map) {
                test = key == "gte" ? .atLeast(bound) : .atMost(bound)
            } else {
                map.report(node, "\"\(key)\" must be a number")
                test = nil
            }
        case "contains":
            if case .scalar(let scalar) = node, !YAMLMapReader.isNull(node), !scalar.string.isEmpty,
                scalar.string.utf8.count <= FieldLimits.stringBytes.upperBound
            {
                test = .contains(scalar.string)
            } else {
                map.report(node, "\"contains\" must be a non-empty string of at most 1024 bytes")
                test = nil
            }
        default:  // exists
            if map.bool("exists") == true {
                test = .exists
            } else {
                map.report(node, "\"exists\" must be true (a field that is not set matches no condition)")
                test = nil
            }
        }
        guard let name, FieldLimits.isValidName(name), let test else { return nil }
        return FieldCondition(field: name, test: test)
    }

    /// A condition's operand: a plain scalar that reads as a finite number is a number, any other scalar a string.
    private static func fieldValue(_ node: Node, _ key: String, _ map: YAMLMapReader) -> FieldValue? {
        guard case .scalar(let scalar) = node, !YAMLMapReader.isNull(node) else {
            map.report(node, "\"\(key)\" must hold strings and numbers")
            return nil
        }
        if scalar.style == .plain, let number = Double(scalar.string), number.isFinite,
            scalar.string.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true
        {
            return .number(number)
        }
        guard scalar.string.utf8.count <= FieldLimits.stringBytes.upperBound else {
            map.report(node, "\"\(key)\" holds a string longer than 1024 bytes: no field value can equal it")
            return nil
        }
        return .string(scalar.string)
    }

    /// C1 `max_awards` and C2 `max_per`, which only a repeatable action may carry (a once-only one is awarded once
    /// anyway, S3).
    private static func caps(_ map: YAMLMapReader, repeatable: Bool, sink: YAMLIssueSink) -> (Int64?, RateCap?) {
        let maxAwards = map.integer("max_awards", in: 1...Int64(Int32.max))
        var maxPer: RateCap?
        if let node = map.value("max_per") {
            if let capMap = YAMLMapReader(node, context: "\(map.context).max_per", sink: sink) {
                let count = capMap.integer("count", in: 1...1024, required: true)
                let within = capMap.duration("within")
                if capMap.value("within") == nil { capMap.report(nil, "\"within\" is required") }
                capMap.finish()
                if let count, let within { maxPer = RateCap(count: count, within: within) }
            }
        }
        if !repeatable {
            for key in ["max_awards", "max_per"] where map.value(key) != nil {
                map.report(
                    map.value(key),
                    "\"\(key)\" applies to repeatable actions only (add \"repeatable: true\"; a once-only action is "
                        + "awarded at most once anyway)")
            }
        }
        return (maxAwards, maxPer)
    }

    private static func trigger(_ map: YAMLMapReader, groups: Set<String>, sink: YAMLIssueSink) -> PointTrigger? {
        let id = id(map)
        let name = map.string("name") ?? ""
        let hasFallsBelow = map.value("falls_below") != nil
        let minPoints = map.integer("min_points", in: Int64.min...Int64.max, required: !hasFallsBelow)
        let fallsBelow = map.integer("falls_below", in: (Int64.min + 1)...Int64.max)
        if hasFallsBelow, map.value("min_points") != nil {
            map.report(
                map.value("falls_below"),
                "\"falls_below\" and \"min_points\" exclude each other: a trigger watches a score rise or fall")
        }
        let group = group(map, groups: groups)
        let triggerExisting = map.bool("trigger_existing") ?? false
        if hasFallsBelow, triggerExisting {
            map.report(
                map.value("trigger_existing"),
                "\"trigger_existing\" applies to min_points triggers only: falls_below is reached by a change of the "
                    + "score, and publishing rules changes none")
        }
        let rearm = map.bool("rearm") ?? false
        let window = window(map)
        var events: [TriggerEvent] = []
        var eventIDs: Set<String> = []
        for (index, node) in (map.sequence("events") ?? []).enumerated() {
            guard let eventMap = YAMLMapReader(node, context: "\(map.context).events[\(index)]", sink: sink) else {
                continue
            }
            if let event = triggerEvent(eventMap) {
                if !eventIDs.insert(event.id).inserted {
                    eventMap.report(eventMap.node, "trigger event id \"\(event.id)\" is used twice in this trigger")
                }
                events.append(event)
            }
            eventMap.finish()
        }
        guard let id, let group, minPoints != nil || fallsBelow != nil else { return nil }
        return PointTrigger(
            id: id, name: name, minPoints: minPoints ?? 0, fallsBelow: fallsBelow, group: group,
            triggerExisting: triggerExisting, rearm: rearm, window: window, events: events)
    }

    private static func triggerEvent(_ map: YAMLMapReader) -> TriggerEvent? {
        let id = id(map)
        guard let type = map.string("type", required: true) else { return nil }
        let kind: TriggerEvent.Kind?
        switch type {
        case "tags.modify", "segments.modify", "campaigns.modify":
            let add = map.stringList("add") ?? []
            let remove = map.stringList("remove") ?? []
            if add.isEmpty, remove.isEmpty { map.report(map.node, "\(type) needs \"add\" or \"remove\"") }
            kind =
                switch type {
                case "tags.modify": .tags(add: add, remove: remove)
                case "segments.modify": .segments(add: add, remove: remove)
                default: .campaigns(add: add, remove: remove)
                }
        case "integration.push":
            kind = map.string("integration", required: true).map { .integrationPush(integration: $0) }
        case "email.send":
            kind = map.string("email", required: true).map { .emailSend(email: $0) }
        case "email.send_to_user":
            let email = map.string("email", required: true)
            let toOwner = map.bool("to_owner") ?? false
            let to = map.stringList("to") ?? []
            if !toOwner, to.isEmpty { map.report(map.node, "email.send_to_user needs \"to_owner: true\" or \"to\"") }
            kind = email.map { .emailSendToUser(email: $0, toOwner: toOwner, to: to) }
        default:
            map.report(
                map.value("type"),
                "unknown trigger event type \"\(type)\" (one of tags.modify, segments.modify, campaigns.modify, "
                    + "integration.push, email.send, email.send_to_user)")
            kind = nil
        }
        guard let id, let kind else { return nil }
        return TriggerEvent(id: id, kind: kind)
    }
}
