// libFuzzer target: the rules file parser (SPEC §2) on arbitrary text. Built and run by scripts/fuzz.
import TallyCore

@_cdecl("LLVMFuzzerTestOneInput")
public func rulesParserFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    // Arbitrary bytes as UTF-8 text (invalid sequences become U+FFFD, as any reader of the file would see them).
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lineCount = countLines(text)
    let first = Result { () throws(YAMLValidationError) -> RuleSet in try RulesParser.parse(text, file: "fuzz.yaml") }
    switch first {
    case .success(let rules):
        check(rules)
    case .failure(let error):
        require(error.file == "fuzz.yaml", "error names file \(error.file)")
        require(!error.issues.isEmpty, "a failure without issues")
        // libyaml ends the stream on a new line: an error at the end of a file without a final line break is
        // reported on the line after the last one.
        let lastLine = lineCount + (endsWithLineBreak(text) ? 0 : 1)
        for issue in error.issues {
            require((0...lastLine).contains(issue.line), "issue on line \(issue.line) of \(lineCount): \(issue)")
            // Line 0 is for the file as a whole; everything found after parsing the YAML points at a node.
            require(issue.line > 0 || issue.message.hasPrefix("YAML"), "issue without a line: \(issue.message)")
        }
        require(zip(error.issues, error.issues.dropFirst()).allSatisfy { $0.line <= $1.line }, "issues out of order")
    }
    // Parsing is deterministic.
    let second = Result { () throws(YAMLValidationError) -> RuleSet in try RulesParser.parse(text, file: "fuzz.yaml") }
    switch (first, second) {
    case (.success(let a), .success(let b)): require(a == b, "two parses differ")
    case (.failure(let a), .failure(let b)): require(a.issues == b.issues, "two parses report different issues")
    default: require(false, "one parse failed, the other succeeded")
    }
    return 0
}

/// What a rule set that passed validation must satisfy (SPEC §2).
private func check(_ rules: RuleSet) {
    require(Set(rules.groups).count == rules.groups.count, "duplicate group")
    for group in rules.groups { require(RulesParser.isValidID(group), "invalid group id \(group)") }
    let groups = Set(rules.groups)
    require(Set(rules.actions.map(\.id)).count == rules.actions.count, "duplicate action id")
    for action in rules.actions {
        require(RulesParser.isValidID(action.id), "invalid action id \(action.id)")
        require(action.type.isBehaviour, "action on administrative type \(action.type)")
        require((Int64(Int32.min)...Int64(Int32.max)).contains(action.delta), "delta \(action.delta)")
        require(action.group.map(groups.contains) ?? true, "undeclared group \(String(describing: action.group))")
        require((action.url != nil) == (action.type == .urlHit), "url on \(action.type)")
        if action.type != .urlHit { require(action.conditions.isEmpty, "url conditions on \(action.type)") }
        if action.type == .urlHit { require(action.items.isEmpty, "items on url.hit") }
        checkWindow(action.window, action.id)
    }
    require(Set(rules.triggers.map(\.id)).count == rules.triggers.count, "duplicate trigger id")
    for trigger in rules.triggers {
        require(RulesParser.isValidID(trigger.id), "invalid trigger id \(trigger.id)")
        require(trigger.group.map(groups.contains) ?? true, "undeclared group \(String(describing: trigger.group))")
        require(Set(trigger.events.map(\.id)).count == trigger.events.count, "duplicate trigger event id")
        for event in trigger.events { require(RulesParser.isValidID(event.id), "invalid trigger event id \(event.id)") }
        checkWindow(trigger.window, trigger.id)
    }
}

private func checkWindow(_ window: PublishWindow, _ id: String) {
    if let up = window.up, let down = window.down { require(up < down, "\(id): empty publish window") }
}

/// Lines as YAML counts them: LF, CR, CRLF, and (YAML 1.1, libyaml) NEL, LS and PS all end a line.
private func countLines(_ text: String) -> Int {
    var count = 1
    var afterCR = false
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": if !afterCR { count += 1 }
        case "\r", "\u{85}", "\u{2028}", "\u{2029}": count += 1
        default: break
        }
        afterCR = scalar == "\r"
    }
    return count
}

private func endsWithLineBreak(_ text: String) -> Bool {
    guard let last = text.unicodeScalars.last else { return true }
    return ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains(last)
}

private func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("rules-parser invariant: \(message())") }
}
