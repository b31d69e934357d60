/// The value of one contact field (F1): a string or a number.
///
/// Numbers are JSON numbers read as IEEE 754 doubles, finite only: integers up to 2^53 are exact, and every
/// comparison (`gte`, `lte`, `equals`) is numeric. Strings are compared as bytes. A string and a number are never
/// equal ("500" is not 500).
public enum FieldValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case number(Double)

    /// The value as a template and the contact page show it: a string as is; a number without a fraction as an
    /// integer (`500`, not `500.0`), otherwise in Swift's shortest round-trip form.
    public var description: String {
        switch self {
        case .string(let text): text
        case .number(let number): Self.format(number)
        }
    }

    /// A number in words: integral values within ±2^53 print as integers.
    public static func format(_ number: Double) -> String {
        if number == number.rounded(), abs(number) <= 9_007_199_254_740_992 { return String(Int64(number)) }
        return String(number)
    }

    /// The value quoted for a reason in words: strings in double quotes, numbers bare.
    public var quoted: String {
        switch self {
        case .string(let text): "\"\(text)\""
        case .number: description
        }
    }

    public static func == (a: FieldValue, b: FieldValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): ByteString.equal(x, y)
        case (.number(let x), .number(let y)): x == y
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .string(let text):
            hasher.combine(0)
            ByteString.hash(text, into: &hasher)
        case .number(let number):
            hasher.combine(1)
            hasher.combine(number)
        }
    }
}

/// One field set or removed by a `contact.update` (F1): `value` nil removes the field.
public struct FieldUpdate: Sendable, Hashable {
    public var name: String
    public var value: FieldValue?

    public init(name: String, value: FieldValue?) {
        self.name = name
        self.value = value
    }
}

/// The limits of contact fields (F1; Docs/decisions.md).
public enum FieldLimits {
    /// At most this many fields per contact, after an update is applied.
    public static let perContact = 100
    /// A string value's size in UTF-8 bytes.
    public static let stringBytes = 0...1024

    /// Field names: `[a-z0-9_.-]{1,64}`, like rule ids.
    public static func isValidName(_ name: String) -> Bool { RulesParser.isValidID(name) }

    /// Why `update` cannot be applied (a name or value out of bounds, a number that is not finite), or nil.
    public static func problem(with update: FieldUpdate) -> String? {
        guard isValidName(update.name) else { return "field name \"\(update.name)\" must match [a-z0-9_.-]{1,64}" }
        switch update.value {
        case .string(let text) where !stringBytes.contains(text.utf8.count):
            return "field \"\(update.name)\" is \(text.utf8.count) bytes long, at most \(stringBytes.upperBound)"
        case .number(let number) where !number.isFinite:
            return "field \"\(update.name)\" must be a finite number"
        default:
            return nil
        }
    }
}

/// The condition of a `contact.field` action (F2): exactly one operator on one field.
public struct FieldCondition: Sendable, Equatable {
    /// The operator and its operand.
    public enum Test: Sendable, Equatable {
        /// The field equals the value (same type; numbers numerically, strings as bytes).
        case equals(FieldValue)
        /// The field equals one of the values.
        case oneOf([FieldValue])
        /// The field is a number at least this.
        case atLeast(Double)
        /// The field is a number at most this.
        case atMost(Double)
        /// The field is a string holding this substring (bytes, case-sensitive).
        case contains(String)
        /// The field is present.
        case exists
    }

    public var field: String
    public var test: Test

    public init(field: String, test: Test) {
        self.field = field
        self.test = test
    }

    /// Whether the condition holds for `fields`.
    public func holds(in fields: [String: FieldValue]) -> Bool {
        guard let value = fields[field] else { return false }
        switch test {
        case .equals(let operand): return value == operand
        case .oneOf(let operands): return operands.contains(value)
        case .atLeast(let bound):
            if case .number(let number) = value { return number >= bound }
            return false
        case .atMost(let bound):
            if case .number(let number) = value { return number <= bound }
            return false
        case .contains(let part):
            guard case .string(let text) = value else { return false }
            return part.isEmpty || text.utf8.firstRange(of: part.utf8) != nil
        case .exists: return true
        }
    }

    /// The condition in words, as the rules file states it (`company_size ≥ 500`).
    public var text: String {
        switch test {
        case .equals(let operand): "\(field) = \(operand.quoted)"
        case .oneOf(let operands): "\(field) in [\(operands.map(\.quoted).joined(separator: ", "))]"
        case .atLeast(let bound): "\(field) ≥ \(FieldValue.format(bound))"
        case .atMost(let bound): "\(field) ≤ \(FieldValue.format(bound))"
        case .contains(let part): "\(field) contains \"\(part)\""
        case .exists: "\(field) exists"
        }
    }

    /// The field's value in words for a reason: `company_size is 800`, or `company_size is not set`.
    public func current(in fields: [String: FieldValue]) -> String {
        guard let value = fields[field] else { return "\(field) is not set" }
        return "\(field) is \(value.quoted)"
    }
}

/// A `contact.field` action's award to one contact while its condition holds (F2): what a reversal takes back.
public struct FieldAward: Sendable, Equatable {
    /// The group the award went to; nil for the main score.
    public var group: String?
    /// The change the award applied (after saturation).
    public var delta: Int64

    public init(group: String?, delta: Int64) {
        self.group = group
        self.delta = delta
    }
}
