internal import Yams

/// Where a rules file names an email template (E2): the `email` of an `email.send` or `email.send_to_user`
/// trigger event, with its line.
public struct EmailTemplateReference: Sendable, Equatable {
    /// The template's name, a file stem in the templates directory.
    public var template: String
    /// The line of the `email` value in the rules file.
    public var line: Int
    /// The trigger and trigger event that name it.
    public var trigger: String
    public var event: String

    public init(template: String, line: Int, trigger: String, event: String) {
        self.template = template
        self.line = line
        self.trigger = trigger
        self.event = event
    }
}

extension RulesParser {
    /// The email templates that a rules file names, in file order. Meant for a file that ``parse(_:file:)``
    /// accepted: anything unexpected is skipped, not reported.
    public static func emailTemplateReferences(_ text: String) -> [EmailTemplateReference] {
        guard let root = try? Yams.compose(yaml: text), let triggers = root.mapping?["triggers"]?.sequence else {
            return []
        }
        var references: [EmailTemplateReference] = []
        for trigger in triggers {
            let triggerID = trigger.mapping?["id"]?.string ?? ""
            for event in trigger.mapping?["events"]?.sequence ?? [] {
                guard let map = event.mapping, let type = map["type"]?.string,
                    type == "email.send" || type == "email.send_to_user", let email = map["email"],
                    let name = email.string
                else { continue }
                references.append(
                    EmailTemplateReference(
                        template: name, line: email.mark?.line ?? 0, trigger: triggerID,
                        event: map["id"]?.string ?? ""))
            }
        }
        return references
    }

    /// Parses `text` and checks every email template it names with `problem`, which says why a template cannot
    /// be used (missing, unparsable) or returns nil: all problems, with the `email` value's line (E2).
    public static func parse(
        _ text: String, file: String = "rules.yaml", templateProblem problem: (String) -> String?
    ) throws(YAMLValidationError) -> RuleSet {
        let rules = try parse(text, file: file)
        var issues: [YAMLIssue] = []
        var checked: [String: String?] = [:]
        for reference in emailTemplateReferences(text) {
            let found = checked[reference.template] ?? problem(reference.template)
            checked[reference.template] = .some(found)
            if let found {
                issues.append(
                    YAMLIssue(
                        line: reference.line,
                        message: "trigger \(reference.trigger) event \(reference.event): email template "
                            + "\"\(reference.template)\": \(found)"))
            }
        }
        guard issues.isEmpty else { throw YAMLValidationError(file: file, issues: issues) }
        return rules
    }
}
