package import Yams

/// One problem in a YAML file, with the line it is on (1-based; 0 when the file as a whole is at fault).
public struct YAMLIssue: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// A YAML file that failed validation: every problem found, in file order.
public struct YAMLValidationError: Error, Sendable, CustomStringConvertible {
    /// The file's name as the user gave it, for messages.
    public var file: String
    public var issues: [YAMLIssue]

    public init(file: String, issues: [YAMLIssue]) {
        self.file = file
        self.issues = issues
    }

    public var description: String {
        issues.map { $0.line > 0 ? "\(file):\($0.line): \($0.message)" : "\(file): \($0.message)" }
            .joined(separator: "\n")
    }
}

/// Walks a YAML mapping key by key, collecting problems instead of stopping at the first one.
///
/// Used by the rules and the config parsers: each reads the keys it knows, and ``finish()`` reports the
/// keys nobody read, so a typo such as `repeatible` is an error rather than a silent default.
package final class YAMLMapReader {
    package let node: Node
    private let pairs: [(key: String, value: Node, line: Int)]
    private var used: Set<String> = []
    private let sink: YAMLIssueSink
    /// Where this mapping is, for messages ("action help-center").
    package let context: String

    package init?(_ node: Node, context: String, sink: YAMLIssueSink) {
        self.node = node
        self.context = context
        self.sink = sink
        guard case .mapping(let mapping) = node else {
            sink.report(node, "\(context) must be a mapping")
            return nil
        }
        var pairs: [(String, Node, Int)] = []
        var seen: Set<String> = []
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                sink.report(key, "\(context): keys must be plain strings")
                continue
            }
            if !seen.insert(name).inserted { sink.report(key, "\(context): key \"\(name)\" given twice") }
            pairs.append((name, value, key.mark?.line ?? 0))
        }
        self.pairs = pairs
    }

    /// The line of the mapping itself.
    package var line: Int { node.mark?.line ?? 0 }

    package func value(_ key: String) -> Node? {
        used.insert(key)
        return pairs.first(where: { $0.key == key })?.value
    }

    package func report(_ node: Node?, _ message: String) {
        if let node {
            sink.report(node, "\(context): \(message)")
        } else {
            sink.report(line: line, "\(context): \(message)")
        }
    }

    package func string(_ key: String, required: Bool = false) -> String? {
        guard let node = value(key), !Self.isNull(node) else {
            if required { report(nil, "\"\(key)\" is required") }
            return nil
        }
        guard case .scalar(let scalar) = node else {
            report(node, "\"\(key)\" must be a string")
            return nil
        }
        return scalar.string
    }

    /// Whether a node is YAML's null (`~`, `null` or nothing).
    package static func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain,
            ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        {
            return true
        }
        return false
    }

    package func bool(_ key: String) -> Bool? {
        guard let node = value(key) else { return nil }
        guard let value = node.scalar.flatMap(Bool.construct) else {
            report(node, "\"\(key)\" must be true or false")
            return nil
        }
        return value
    }

    package func integer(_ key: String, in range: ClosedRange<Int64>, required: Bool = false) -> Int64? {
        guard let node = value(key) else {
            if required { report(nil, "\"\(key)\" is required") }
            return nil
        }
        guard let text = node.scalar?.string, let number = Int64(text) else {
            report(node, "\"\(key)\" must be an integer")
            return nil
        }
        guard range.contains(number) else {
            report(node, "\"\(key)\" must be within \(range.lowerBound)...\(range.upperBound), is \(number)")
            return nil
        }
        return number
    }

    /// A duration such as `30s`, `15m`, `24h`, `7d`, in milliseconds.
    package func duration(_ key: String) -> Int64? {
        guard let node = value(key) else { return nil }
        guard let text = node.scalar?.string, let millis = DurationText.parse(text), millis > 0 else {
            report(node, "\"\(key)\" must be a positive duration such as 30s, 15m, 24h or 7d")
            return nil
        }
        return millis
    }

    /// An RFC 3339 date-time, in epoch milliseconds.
    package func timestamp(_ key: String) -> Int64? {
        guard let node = value(key) else { return nil }
        guard let text = node.scalar?.string, let millis = Timestamp.parse(text) else {
            report(node, "\"\(key)\" must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z")
            return nil
        }
        return millis
    }

    package func stringList(_ key: String) -> [String]? {
        guard let node = value(key) else { return nil }
        guard case .sequence(let sequence) = node else {
            if Self.isNull(node) { return [] }
            report(node, "\"\(key)\" must be a list")
            return nil
        }
        var strings: [String] = []
        for element in sequence {
            guard case .scalar(let scalar) = element else {
                report(element, "\"\(key)\" must hold strings")
                continue
            }
            strings.append(scalar.string)
        }
        return strings
    }

    package func sequence(_ key: String) -> [Node]? {
        guard let node = value(key) else { return nil }
        if case .sequence(let sequence) = node { return Array(sequence) }
        if Self.isNull(node) { return [] }
        report(node, "\"\(key)\" must be a list")
        return nil
    }

    package func mapping(_ key: String) -> YAMLMapReader? {
        guard let node = value(key) else { return nil }
        return YAMLMapReader(node, context: "\(context).\(key)", sink: sink)
    }

    /// All keys of the mapping with their values, for free-form maps such as HTTP headers.
    package var entries: [(key: String, value: Node)] {
        pairs.map { ($0.key, $0.value) }
    }

    /// Reports every key that no accessor asked for.
    package func finish() {
        for pair in pairs where !used.contains(pair.key) {
            sink.report(line: pair.line, "\(context): unknown key \"\(pair.key)\"")
        }
    }
}

/// Collects the problems found while reading one YAML file.
package final class YAMLIssueSink {
    package private(set) var issues: [YAMLIssue] = []

    package init() {}

    package func report(_ node: Node, _ message: String) {
        report(line: node.mark?.line ?? 0, message)
    }

    package func report(line: Int, _ message: String) {
        issues.append(YAMLIssue(line: line, message: message))
    }

    /// Composes a YAML document, reporting a syntax error with its line.
    package func compose(_ text: String) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                .composer(_, let problem, let mark, _):
                report(line: mark.line, "YAML syntax error: \(problem)")
            default:
                report(line: 0, "YAML error: \(error)")
            }
        } catch {
            report(line: 0, "YAML error: \(error)")
        }
        return nil
    }

    /// Throws the collected problems, sorted by line, if there are any.
    package func check(file: String) throws(YAMLValidationError) {
        guard issues.isEmpty else {
            throw YAMLValidationError(
                file: file,
                issues: issues.enumerated().sorted { a, b in
                    (a.element.line, a.offset) < (b.element.line, b.offset)
                }.map(\.element))
        }
    }
}
