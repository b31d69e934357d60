/// One validated row of a points import (SPEC M2): set `contact`'s score (or `group`'s score) to `points`.
public struct PointsImportRow: Sendable, Equatable {
    /// 1-based physical line where the record starts (the header is line 1).
    public var line: Int
    /// The contact id, 1–128 bytes of UTF-8.
    public var contact: String
    /// The new score.
    public var points: Int64
    /// The point group whose score is set, or nil for the main score.
    public var group: String?
    /// The contact's email address, or nil when the column is absent or empty.
    public var email: String?

    public init(line: Int, contact: String, points: Int64, group: String? = nil, email: String? = nil) {
        self.line = line
        self.contact = contact
        self.points = points
        self.group = group
        self.email = email
    }
}

/// Why a points import was rejected: the line and the column at fault, for an operator.
///
/// `description` reads like `line 7, column points: "12a" is not an integer`.
public struct PointsCSVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based physical line where the offending record starts (the header is line 1); for an empty line, the
    /// empty line itself.
    public var line: Int
    /// The column (its header name) at fault, or nil for an error about the record as a whole.
    public var column: String?
    public var message: String

    public init(line: Int, column: String?, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        if let column { return "line \(line), column \(column): \(message)" }
        return "line \(line): \(message)"
    }
}

/// A streaming, strict RFC 4180 reader for points imports (SPEC M2): `contact,points[,group][,email]` with a
/// header line naming the columns in any order.
///
/// Feed the input in chunks of any size with ``feed(_:_:)`` and end it with ``finish(_:)``; each validated row
/// is handed to the closure as soon as its record ends. Memory is bounded by the longest record, not by the
/// number of lines: one record's bytes are buffered, and any single field longer than ``maximumFieldLength``
/// bytes (or the longest known group name) is rejected at once, so an unterminated quote cannot buffer a whole
/// upload. A record that lies whole inside one chunk and has no quotes (the common case) is validated where it
/// lies, without copying; any other goes through a byte-level state machine, with the same result.
///
/// The format:
/// - A header line is required. `contact` and `points` are required, `group` and `email` optional; names are
///   matched exactly (lowercase, no surrounding spaces); unknown and duplicate names are errors.
/// - Fields are separated by `,` and records by LF or CRLF; a CR not followed by LF outside quotes is an error.
///   A field may be quoted with `"`: inside quotes `""` is a quote and `,`, CR and LF are literal. A quote in an
///   unquoted field, or text after a closing quote, is an error. Every record has the header's number of fields.
/// - Empty lines are errors except at the end of the input. A UTF-8 byte order mark at the start is skipped.
/// - Values: every field is valid UTF-8; `contact` is 1–128 bytes; `points` is a base-10 integer with an optional
///   sign that fits in 64 bits; `group` is empty (the main score) or one of the known groups; `email` is empty or
///   3–254 bytes with exactly one `@` with text on both sides and no spaces or control characters.
///
/// Errors are ``PointsCSVError`` values naming the line where the record starts. Once the reader has thrown a
/// ``PointsCSVError`` it keeps throwing it; after an error thrown by the row closure it must not be used again.
public struct PointsCSVReader: Sendable {
    /// Longest field accepted (a group name longer than this raises the limit to its length). No valid contact,
    /// points or email value comes close.
    public static let maximumFieldLength = 4096

    /// The header names the reader knows.
    static let columnNames = ["contact", "points", "group", "email"]

    private enum State: UInt8 {
        /// At the start of a field (also of a record).
        case fieldStart
        /// Inside an unquoted field.
        case unquoted
        /// Inside a quoted field.
        case quoted
        /// Just after a quote inside a quoted field: a doubled quote or the closing one.
        case quoteInQuoted
        /// Just after a CR that ended a field; an LF must follow.
        case afterCR
    }

    private let knownGroups: Set<String>
    private let fieldLimit: Int

    private var state = State.fieldStart
    /// Bytes of the byte order mark matched so far at the very start; nil once past it.
    private var bomMatched: Int? = 0
    /// Physical line of the next byte.
    private var line = 1
    /// Physical line where the current record starts.
    private var recordLine = 1
    /// Whether the current record has consumed a byte other than its line end.
    private var recordStarted = false
    /// The first of the empty lines seen since the last record; an error once another record follows.
    private var pendingEmptyLine: Int?
    /// The current record's field values, back to back.
    private var buffer: [UInt8] = []
    /// Where the current record's completed fields lie in `buffer`.
    private var fields = FieldBounds()
    /// Column name of each field, from the header; empty until the header has been read.
    private var header: [String] = []
    private var headerDone = false
    private var contactIndex = 0
    private var pointsIndex = 0
    private var groupIndex: Int?
    private var emailIndex: Int?
    private var failure: PointsCSVError?

    /// Rows handed to the row closure so far.
    public private(set) var rows = 0

    /// A reader for an import into a rules version with `knownGroups`: a `group` value must be one of them (or
    /// empty, for the main score).
    public init(knownGroups: Set<String>) {
        self.knownGroups = knownGroups
        self.fieldLimit = max(Self.maximumFieldLength, knownGroups.map(\.utf8.count).max() ?? 0)
        buffer.reserveCapacity(256)
    }

    /// Reads the next chunk of input, calling `row` for each record it completes.
    ///
    /// Throws a ``PointsCSVError`` for invalid input, or what `row` throws.
    public mutating func feed(_ bytes: some Collection<UInt8>, _ row: (PointsImportRow) throws -> Void) throws {
        if let failure { throw failure }
        let done: Void? = try bytes.withContiguousStorageIfAvailable { try feedChecked($0, row) }
        if done == nil {
            try Array(bytes).withUnsafeBufferPointer { try feedChecked($0, row) }
        }
    }

    /// Ends the input: completes a last record without a line end and checks that nothing is left open (a quoted
    /// field, a CR) and that there was a header.
    public mutating func finish(_ row: (PointsImportRow) throws -> Void) throws {
        if let failure { throw failure }
        do {
            if let matched = bomMatched, matched > 0 {
                // The input was a strict prefix of a byte order mark: those bytes are data after all.
                bomMatched = nil
                try Self.bom.withUnsafeBufferPointer { try process(UnsafeBufferPointer(rebasing: $0[..<matched]), row) }
            }
            bomMatched = nil
            switch state {
            case .quoted:
                throw error(column: currentColumn, "unterminated quote: the field has no closing quote")
            case .afterCR:
                throw error(column: currentColumn, "a carriage return not followed by a line feed")
            case .fieldStart, .unquoted, .quoteInQuoted:
                if recordStarted { try endRecord(row) }
            }
            if !headerDone {
                throw PointsCSVError(
                    line: 1, column: nil,
                    message: "no header line; the first line names the columns, such as contact,points")
            }
        } catch let error as PointsCSVError {
            failure = error
            throw error
        }
    }

    private static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// Where the fields of one record lie in its bytes: at most four, as the header has at most four columns.
    /// Fixed storage, so that reading a record allocates nothing.
    private struct FieldBounds: Sendable {
        private(set) var count = 0
        private var starts = (0, 0, 0, 0)
        private var ends = (0, 0, 0, 0)

        mutating func append(_ range: Range<Int>) {
            switch count {
            case 0: (starts.0, ends.0) = (range.lowerBound, range.upperBound)
            case 1: (starts.1, ends.1) = (range.lowerBound, range.upperBound)
            case 2: (starts.2, ends.2) = (range.lowerBound, range.upperBound)
            default: (starts.3, ends.3) = (range.lowerBound, range.upperBound)
            }
            count += 1
        }

        subscript(index: Int) -> Range<Int> {
            switch index {
            case 0: starts.0..<ends.0
            case 1: starts.1..<ends.1
            case 2: starts.2..<ends.2
            default: starts.3..<ends.3
            }
        }
    }

    private mutating func feedChecked(
        _ input: UnsafeBufferPointer<UInt8>, _ row: (PointsImportRow) throws -> Void
    ) throws {
        do {
            var start = 0
            if let matched = bomMatched {
                var count = matched
                while count < 3, start < input.count, input[start] == Self.bom[count] {
                    count += 1
                    start += 1
                }
                if count == 3 {
                    bomMatched = nil
                } else if start == input.count {
                    bomMatched = count
                    return
                } else {
                    // Not a byte order mark: what matched of it is data.
                    bomMatched = nil
                    try Self.bom.withUnsafeBufferPointer {
                        try process(UnsafeBufferPointer(rebasing: $0[..<count]), row)
                    }
                }
            }
            try process(UnsafeBufferPointer(rebasing: input[start...]), row)
        } catch let error as PointsCSVError {
            failure = error
            throw error
        }
    }

    /// The state machine over one piece of input; copies only field bytes, in runs.
    private mutating func process(_ input: UnsafeBufferPointer<UInt8>, _ row: (PointsImportRow) throws -> Void) throws {
        let comma: UInt8 = 0x2C
        let quote: UInt8 = 0x22
        let cr: UInt8 = 0x0D
        let lf: UInt8 = 0x0A
        // Plain pointer subscripts: they are inlined even in debug builds, unlike the buffer's.
        guard let base = input.baseAddress else { return }
        let count = input.count
        var index = 0
        while index < count {
            switch state {
            case .unquoted:
                var end = index
                while end < count {
                    let byte = base[end]
                    if byte == comma || byte == quote || byte == cr || byte == lf { break }
                    end += 1
                }
                try append(input, index..<end)
                index = end
                if end == count { return }
                let byte = base[end]
                index += 1
                if byte == comma {
                    try endField()
                    state = .fieldStart
                } else if byte == lf {
                    try endLine(row)
                } else if byte == cr {
                    state = .afterCR
                } else {
                    throw error(
                        column: currentColumn,
                        "a quote inside an unquoted field (quote the whole field and double the quote)")
                }

            case .quoted:
                var end = index
                var newlines = 0
                while end < count {
                    let byte = base[end]
                    if byte == quote { break }
                    if byte == lf { newlines += 1 }
                    end += 1
                }
                try append(input, index..<end)
                line += newlines
                index = end
                if end < count {
                    index += 1
                    state = .quoteInQuoted
                }

            case .fieldStart:
                if !recordStarted, headerDone, pendingEmptyLine == nil, let end = try wholeRecord(input, index, row) {
                    index = end
                    continue
                }
                let byte = base[index]
                index += 1
                if !recordStarted, byte != cr, byte != lf { try startRecord() }
                if byte == comma {
                    try endField()
                } else if byte == quote {
                    state = .quoted
                } else if byte == lf {
                    try endLine(row)
                } else if byte == cr {
                    state = .afterCR
                } else {
                    state = .unquoted
                    index -= 1
                }

            case .quoteInQuoted:
                let byte = base[index]
                index += 1
                if byte == quote {
                    try append(input, (index - 1)..<index)
                    state = .quoted
                } else if byte == comma {
                    try endField()
                    state = .fieldStart
                } else if byte == lf {
                    try endLine(row)
                } else if byte == cr {
                    state = .afterCR
                } else {
                    throw error(column: currentColumn, "text after the closing quote")
                }

            case .afterCR:
                guard base[index] == lf else {
                    throw error(column: currentColumn, "a carriage return not followed by a line feed")
                }
                index += 1
                try endLine(row)
            }
        }
    }

    /// The fast path: a record wholly inside `input` from `start`, without quotes, read without copying.
    ///
    /// Returns the index after its line end, or nil (having changed nothing) when the record is not that simple or
    /// not well-formed, for the state machine to read it or report the error.
    private mutating func wholeRecord(
        _ input: UnsafeBufferPointer<UInt8>, _ start: Int, _ row: (PointsImportRow) throws -> Void
    ) throws -> Int? {
        var bounds = FieldBounds()
        var fieldStart = start
        var index = start
        guard let base = input.baseAddress else { return nil }
        let count = input.count
        let columns = header.count
        while index < count {
            let byte = base[index]
            if byte > 0x2C {
                index += 1
                continue
            }
            if byte == 0x2C {
                guard bounds.count + 1 < columns, index - fieldStart <= fieldLimit else { return nil }
                bounds.append(fieldStart..<index)
                fieldStart = index + 1
            } else if byte == 0x0A || byte == 0x0D {
                var end = index
                if byte == 0x0D {
                    end += 1
                    guard end < count, base[end] == 0x0A else { return nil }
                }
                guard bounds.count + 1 == columns, index - fieldStart <= fieldLimit else { return nil }
                bounds.append(fieldStart..<index)
                recordStarted = true
                try emit(input, bounds, row)
                rows += 1
                recordStarted = false
                line += 1
                recordLine = line
                return end + 1
            } else if byte == 0x22 {
                return nil
            }
            index += 1
        }
        return nil
    }

    /// The column of the field being read, when the header names it.
    private var currentColumn: String? {
        fields.count < header.count ? header[fields.count] : nil
    }

    /// Where the field being read starts in `buffer`.
    private var currentFieldStart: Int {
        fields.count == 0 ? 0 : fields[fields.count - 1].upperBound
    }

    private func error(line: Int? = nil, column: String?, _ message: String) -> PointsCSVError {
        PointsCSVError(line: line ?? recordLine, column: column, message: message)
    }

    /// The first byte of a record that is not a line end.
    private mutating func startRecord() throws {
        recordStarted = true
        if let empty = pendingEmptyLine {
            throw error(line: empty, column: nil, "empty line (only the end of the file may have empty lines)")
        }
    }

    private mutating func append(_ input: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) throws {
        guard !range.isEmpty else { return }
        buffer.append(contentsOf: UnsafeBufferPointer(rebasing: input[range]))
        if buffer.count - currentFieldStart > fieldLimit {
            throw error(column: currentColumn, "the field is longer than \(fieldLimit) bytes")
        }
    }

    private mutating func endField() throws {
        if headerDone {
            guard fields.count < header.count else {
                throw error(column: nil, "the record has more fields than the header's \(header.count)")
            }
            fields.append(currentFieldStart..<buffer.count)
        } else {
            fields.append(currentFieldStart..<buffer.count)
            try headerField()
        }
    }

    /// An LF outside quotes: the end of a record or of an empty line.
    private mutating func endLine(_ row: (PointsImportRow) throws -> Void) throws {
        line += 1
        state = .fieldStart
        if recordStarted {
            try endRecord(row)
        } else if pendingEmptyLine == nil {
            pendingEmptyLine = recordLine
        }
        recordLine = line
    }

    private mutating func endRecord(_ row: (PointsImportRow) throws -> Void) throws {
        try endField()
        if headerDone {
            guard fields.count == header.count else {
                throw error(
                    column: header[fields.count],
                    "missing: the record has \(fields.count) fields, the header has \(header.count)")
            }
            try buffer.withUnsafeBufferPointer { try emit($0, fields, row) }
            rows += 1
        } else {
            try endHeader()
        }
        buffer.removeAll(keepingCapacity: true)
        fields = FieldBounds()
        recordStarted = false
    }

    // MARK: Header

    /// Checks the header field just completed.
    private mutating func headerField() throws {
        let bytes = buffer[fields[fields.count - 1]]
        let name = String(decoding: bytes, as: UTF8.self)
        guard Self.columnNames.contains(name) else {
            throw error(
                column: name, "unknown column \(Self.quoted(bytes)); the columns are contact, points, group and email")
        }
        guard !header.contains(name) else {
            throw error(column: name, "the column \(name) appears twice")
        }
        header.append(name)
    }

    private mutating func endHeader() throws {
        for required in ["contact", "points"] where !header.contains(required) {
            throw error(column: required, "the header has no \(required) column")
        }
        contactIndex = header.firstIndex(of: "contact") ?? 0
        pointsIndex = header.firstIndex(of: "points") ?? 0
        groupIndex = header.firstIndex(of: "group")
        emailIndex = header.firstIndex(of: "email")
        headerDone = true
    }

    // MARK: Values

    /// Validates one record, whose fields lie at `fields` in `record`, and hands it to `row`.
    private func emit(
        _ record: UnsafeBufferPointer<UInt8>, _ fields: FieldBounds, _ row: (PointsImportRow) throws -> Void
    ) throws {
        do {
            func field(_ index: Int) -> UnsafeBufferPointer<UInt8> {
                UnsafeBufferPointer(rebasing: record[fields[index]])
            }
            func text(_ index: Int) throws -> String {
                guard let value = Self.string(field(index)) else {
                    throw error(column: header[index], "\(Self.quoted(field(index))) is not valid UTF-8")
                }
                return value
            }

            let contactBytes = field(contactIndex)
            guard !contactBytes.isEmpty else { throw error(column: "contact", "is empty") }
            guard EventLimits.contact.contains(contactBytes.count) else {
                let limit = EventLimits.contact
                throw error(
                    column: "contact",
                    "must be \(limit.lowerBound)–\(limit.upperBound) bytes long, is \(contactBytes.count)")
            }
            let contact = try text(contactIndex)

            let points = try parsePoints(field(pointsIndex))

            var group: String?
            if let groupIndex, !field(groupIndex).isEmpty {
                let name = try text(groupIndex)
                guard knownGroups.contains(name) else {
                    throw error(column: "group", "unknown group \(Self.quoted(field(groupIndex)))")
                }
                group = name
            }

            var email: String?
            if let emailIndex, !field(emailIndex).isEmpty {
                let bytes = field(emailIndex)
                let value = try text(emailIndex)
                let limit = EventLimits.email
                guard limit.contains(bytes.count) else {
                    throw error(
                        column: "email",
                        "must be \(limit.lowerBound)–\(limit.upperBound) bytes long, is \(bytes.count)")
                }
                // The same rule as every other way in (contact.update, the mailer): one shared check.
                guard EmailAddress.isValid(value) else {
                    throw error(
                        column: "email",
                        "\(Self.quoted(bytes)) is not an email address (local@domain, without spaces or angle brackets)"
                    )
                }
                email = value
            }

            try row(PointsImportRow(line: recordLine, contact: contact, points: points, group: group, email: email))
        }
    }

    /// A base-10 integer with an optional sign, within `Int64`.
    private func parsePoints(_ bytes: UnsafeBufferPointer<UInt8>) throws -> Int64 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { throw error(column: "points", "is empty") }
        let count = bytes.count
        let negative = base[0] == 0x2D
        var index = negative || base[0] == 0x2B ? 1 : 0
        guard index < count else { throw error(column: "points", "\(Self.quoted(bytes)) is not an integer") }
        var magnitude: UInt64 = 0
        var overflow = false
        while index < count {
            let digit = base[index] &- 0x30
            guard digit < 10 else {
                if Self.string(bytes) == nil {
                    throw error(column: "points", "\(Self.quoted(bytes)) is not valid UTF-8")
                }
                throw error(column: "points", "\(Self.quoted(bytes)) is not an integer")
            }
            // Below this bound, ten times plus a digit stays within UInt64; above it, the value is out of range.
            if magnitude <= 922_337_203_685_477_580 {
                magnitude = magnitude * 10 + UInt64(digit)
            } else {
                overflow = true
            }
            index += 1
        }
        let limit = negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
        guard !overflow, magnitude <= limit else {
            throw error(column: "points", "points \(Self.display(bytes)) is outside the 64-bit score range")
        }
        return negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude)
    }

    /// The bytes as a string, or nil when they are not valid UTF-8.
    private static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? { UTF8Text.string(bytes) }

    /// At most 64 bytes of a value, decoded leniently, for a message.
    private static func display(_ bytes: some Collection<UInt8>) -> String {
        let shown = String(decoding: bytes.prefix(64), as: UTF8.self)
        return bytes.count > 64 ? shown + "…" : shown
    }

    /// A value for a message: quoted, escaped, at most 64 bytes.
    private static func quoted(_ bytes: some Collection<UInt8>) -> String {
        display(bytes).debugDescription
    }
}
