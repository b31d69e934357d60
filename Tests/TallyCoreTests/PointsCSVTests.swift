import TallyCore
import Testing

/// The rows read from an input, and the error that stopped the reading (if any).
private struct Outcome: Equatable, CustomStringConvertible {
    var rows: [PointsImportRow] = []
    var error: PointsCSVError?

    var description: String { "\(rows.count) rows, error: \(error.map(String.init(describing:)) ?? "none")" }
}

private let groups: Set<String> = ["sales", "beta"]

/// Reads `bytes` fed in chunks of `chunk` bytes (all at once when nil).
private func read(_ bytes: [UInt8], chunk: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
    var reader = PointsCSVReader(knownGroups: groups)
    var outcome = Outcome()
    do {
        let size = max(chunk ?? bytes.count, 1)
        var start = 0
        while start < bytes.count {
            let end = min(start + size, bytes.count)
            try reader.feed(bytes[start..<end]) { outcome.rows.append($0) }
            start = end
        }
        try reader.finish { outcome.rows.append($0) }
        #expect(reader.rows == outcome.rows.count, sourceLocation: sourceLocation)
    } catch let error as PointsCSVError {
        outcome.error = error
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
    return outcome
}

private func read(_ text: String, chunk: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
    read(Array(text.utf8), chunk: chunk, sourceLocation: sourceLocation)
}

/// The rows of an input that must be accepted.
private func rows(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [PointsImportRow] {
    let outcome = read(text, sourceLocation: sourceLocation)
    if let error = outcome.error { Issue.record("rejected: \(error)", sourceLocation: sourceLocation) }
    return outcome.rows
}

/// The error an input must be rejected with.
private func rejection(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> PointsCSVError? {
    let outcome = read(bytes, sourceLocation: sourceLocation)
    if outcome.error == nil { Issue.record("accepted \(outcome.rows.count) rows", sourceLocation: sourceLocation) }
    return outcome.error
}

private func rejection(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> PointsCSVError? {
    rejection(Array(text.utf8), sourceLocation: sourceLocation)
}

@Suite("PointsCSV: streaming CSV reader for points imports (M2)")
struct PointsCSVTests {
    // MARK: Valid input

    @Test("M2: all columns in a shuffled order")
    func shuffledColumns() {
        let text = """
            email,points,contact,group
            ann@example.com,10,ann,sales
            ,-5,bob,
            ,+7,carol,beta
            dan@x.io,0,dan,

            """
        #expect(
            rows(text) == [
                PointsImportRow(line: 2, contact: "ann", points: 10, group: "sales", email: "ann@example.com"),
                PointsImportRow(line: 3, contact: "bob", points: -5, group: nil, email: nil),
                PointsImportRow(line: 4, contact: "carol", points: 7, group: "beta", email: nil),
                PointsImportRow(line: 5, contact: "dan", points: 0, group: nil, email: "dan@x.io"),
            ])
    }

    @Test("M2: only the required columns")
    func requiredColumns() {
        #expect(rows("points,contact\n3,a\n") == [PointsImportRow(line: 2, contact: "a", points: 3)])
    }

    @Test("M2: a header alone imports nothing")
    func headerOnly() {
        #expect(rows("contact,points\n").isEmpty)
        #expect(rows("contact,points").isEmpty)
    }

    @Test("M2: quoted fields with commas, doubled quotes and newlines; later lines count the newlines")
    func quotedFields() {
        let text =
            "contact,points,email\n\"a,b\",1,\n\"say \"\"hi\"\"\",\"2\",\"\"\n"
            + "\"multi\nline\ncontact\",3,\"x@y.z\"\n\"z\",4a,\n"
        let outcome = read(text)
        #expect(
            outcome.rows == [
                PointsImportRow(line: 2, contact: "a,b", points: 1),
                PointsImportRow(line: 3, contact: "say \"hi\"", points: 2),
                PointsImportRow(line: 4, contact: "multi\nline\ncontact", points: 3, email: "x@y.z"),
            ])
        #expect(outcome.error == PointsCSVError(line: 7, column: "points", message: "\"4a\" is not an integer"))
    }

    @Test("M2: quoted header names")
    func quotedHeader() {
        #expect(rows("\"contact\",\"points\"\na,1\n") == [PointsImportRow(line: 2, contact: "a", points: 1)])
    }

    @Test("M2: CRLF line ends, and CR LF inside quotes is literal")
    func crlf() {
        #expect(
            rows("contact,points,group\r\na,1,sales\r\n\"b\r\nc\",2,\r\n\"d\",3,\"beta\"\r\n") == [
                PointsImportRow(line: 2, contact: "a", points: 1, group: "sales"),
                PointsImportRow(line: 3, contact: "b\r\nc", points: 2),
                PointsImportRow(line: 5, contact: "d", points: 3, group: "beta"),
            ])
        #expect(rows("contact,points\r\na,1\r\n\r\n") == [PointsImportRow(line: 2, contact: "a", points: 1)])
    }

    @Test("M2: a byte order mark at the start is skipped; elsewhere it is data")
    func byteOrderMark() {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let outcome = read(bom + Array("contact,points\n".utf8) + bom + Array("a,1\n".utf8))
        #expect(outcome.rows == [PointsImportRow(line: 2, contact: "\u{FEFF}a", points: 1)])
        #expect(outcome.error == nil)
        // The start of a byte order mark that is not one is data: here, an unknown column.
        let partial = rejection([0xEF, 0xBB] + Array("contact,points\na,1\n".utf8))
        #expect(partial?.line == 1)
        #expect(partial?.column == "\u{FFFD}contact")
        #expect(rejection([0xEF, 0xBB])?.line == 1)
        #expect(rejection(bom)?.message.hasPrefix("no header line") == true)
    }

    @Test("M2: no newline after the last record")
    func noTrailingNewline() {
        #expect(
            rows("contact,points\na,1\nb,2") == [
                PointsImportRow(line: 2, contact: "a", points: 1), PointsImportRow(line: 3, contact: "b", points: 2),
            ])
        #expect(rows("contact,points\na,\"1\"") == [PointsImportRow(line: 2, contact: "a", points: 1)])
        #expect(rows("contact,points,email\na,1,") == [PointsImportRow(line: 2, contact: "a", points: 1)])
    }

    @Test("M2: empty lines at the end of the file are fine")
    func trailingEmptyLines() {
        #expect(rows("contact,points\na,1\n\n") == [PointsImportRow(line: 2, contact: "a", points: 1)])
        #expect(rows("contact,points\na,1\n\n\n") == [PointsImportRow(line: 2, contact: "a", points: 1)])
    }

    @Test("M2: points at the edges of the 64-bit range")
    func pointsRange() {
        #expect(
            rows("contact,points\na,9223372036854775807\nb,-9223372036854775808\nc,-0\nd,007\n").map(\.points) == [
                .max, .min, 0, 7,
            ])
    }

    @Test("M2: contact and email at their length limits")
    func lengthLimits() {
        let contact = String(repeating: "c", count: 128)
        let email = String(repeating: "e", count: 250) + "@x.y"
        #expect(
            rows("contact,points,email\n\(contact),1,\(email)\n")
                == [PointsImportRow(line: 2, contact: contact, points: 1, email: email)])
        #expect(rows("contact,points,email\nc,1,a@b\n").map(\.email) == ["a@b"])
    }

    // MARK: Errors

    @Test("M2 error: a bad integer names the line and the points column")
    func badInteger() {
        let error = rejection("contact,points\na,1\nb,12a\n")
        #expect(error == PointsCSVError(line: 3, column: "points", message: "\"12a\" is not an integer"))
        #expect(error?.description == "line 3, column points: \"12a\" is not an integer")
        for bad in ["-", "+", " 1", "1 ", "1.5", "1e3", "--1", "0x10"] {
            #expect(rejection("contact,points\na,\(bad)\n")?.message == "\(bad.debugDescription) is not an integer")
        }
        #expect(rejection("contact,points\na,\n") == PointsCSVError(line: 2, column: "points", message: "is empty"))
    }

    @Test("M2 error: points outside the 64-bit range")
    func overflow() {
        #expect(
            rejection("contact,points\na,1\nb,99999999999999999999\n")
                == PointsCSVError(
                    line: 3, column: "points", message: "points 99999999999999999999 is outside the 64-bit score range")
        )
        #expect(rejection("contact,points\na,9223372036854775808\n")?.column == "points")
        #expect(rejection("contact,points\na,-9223372036854775809\n")?.column == "points")
    }

    @Test("M2 error: an unknown group")
    func unknownGroup() {
        #expect(
            rejection("contact,points,group\na,1,sales\nb,2,x\n")
                == PointsCSVError(line: 3, column: "group", message: "unknown group \"x\""))
        #expect(rejection("contact,points,group\na,1,Sales\n")?.message == "unknown group \"Sales\"")
    }

    @Test("M2 error: a missing column in the header, a missing field in a record")
    func missingColumn() {
        #expect(
            rejection("contact,group\na,sales\n")
                == PointsCSVError(line: 1, column: "points", message: "the header has no points column"))
        #expect(
            rejection("points\n1\n")
                == PointsCSVError(line: 1, column: "contact", message: "the header has no contact column"))
        #expect(
            rejection("contact,points,email\na,1,x@y.z\nb,2\n")
                == PointsCSVError(
                    line: 3, column: "email", message: "missing: the record has 2 fields, the header has 3"))
    }

    @Test("M2 error: unknown, duplicate and padded header names")
    func badHeader() {
        #expect(
            rejection("contact,points,Group\n")
                == PointsCSVError(
                    line: 1, column: "Group",
                    message: "unknown column \"Group\"; the columns are contact, points, group and email"))
        #expect(
            rejection("contact,points,points\n")
                == PointsCSVError(
                    line: 1, column: "points", message: "the column points appears twice"))
        #expect(rejection("contact, points\n")?.column == " points")
        #expect(rejection("contact,points,\n")?.column == "")
        #expect(rejection("")?.message.hasPrefix("no header line") == true)
    }

    @Test("M2 error: an extra field")
    func extraField() {
        #expect(
            rejection("contact,points\na,1\nb,2,x\n")
                == PointsCSVError(line: 3, column: nil, message: "the record has more fields than the header's 2"))
        #expect(rejection("contact,points\na,1,\n")?.line == 2)
    }

    @Test("M2 error: an unterminated quote names the line where its record starts")
    func unterminatedQuote() {
        #expect(
            rejection("contact,points\na,1\nb,\"2\nc,3\n")
                == PointsCSVError(
                    line: 3, column: "points", message: "unterminated quote: the field has no closing quote"))
        #expect(rejection("contact,points\n\"a")?.column == "contact")
    }

    @Test("M2 error: a quote inside an unquoted field, text after a closing quote")
    func strayQuotes() {
        #expect(
            rejection("contact,points\na,1\nb\"c,2\n")
                == PointsCSVError(
                    line: 3, column: "contact",
                    message: "a quote inside an unquoted field (quote the whole field and double the quote)"))
        #expect(
            rejection("contact,points\n\"a\"b,1\n")
                == PointsCSVError(line: 2, column: "contact", message: "text after the closing quote"))
        #expect(rejection("contact,points\na,\"1\" \n")?.column == "points")
    }

    @Test("M2 error: an empty line in the middle")
    func emptyLine() {
        let expected = PointsCSVError(
            line: 3, column: nil, message: "empty line (only the end of the file may have empty lines)")
        #expect(rejection("contact,points\na,1\n\nb,2\n") == expected)
        #expect(rejection("contact,points\na,1\n\n\n\nb,2\n") == expected)
        #expect(rejection("contact,points\r\na,1\r\n\r\nb,2\r\n") == expected)
        #expect(rejection("\ncontact,points\n")?.line == 1)
    }

    @Test("M2 error: a lone carriage return")
    func loneCR() {
        #expect(
            rejection("contact,points\na,1\rb,2\n")
                == PointsCSVError(
                    line: 2, column: "points", message: "a carriage return not followed by a line feed"))
        #expect(rejection("contact,points\na,1\r")?.line == 2)
    }

    @Test("M2 error: invalid UTF-8")
    func invalidUTF8() {
        let head = Array("contact,points,group,email\na,1,,\n".utf8)
        #expect(
            rejection(head + [0x62, 0xC3, 0x28] + Array(",2,,\n".utf8))
                == PointsCSVError(line: 3, column: "contact", message: "\"b\u{FFFD}(\" is not valid UTF-8"))
        #expect(rejection(head + Array("b,2,".utf8) + [0xFF] + Array(",\n".utf8))?.column == "group")
        #expect(rejection(head + Array("b,2,,x@".utf8) + [0xED, 0xA0, 0x80] + [0x0A])?.column == "email")
        #expect(
            rejection(head + Array("b,".utf8) + [0xFF] + Array(",,\n".utf8))
                == PointsCSVError(line: 3, column: "points", message: "\"\u{FFFD}\" is not valid UTF-8"))
    }

    @Test("M2 error: an empty or too long contact")
    func badContact() {
        #expect(
            rejection("contact,points\na,1\n,2\n") == PointsCSVError(line: 3, column: "contact", message: "is empty"))
        #expect(rejection("contact,points\n\"\",2\n")?.column == "contact")
        #expect(
            rejection("contact,points\n\(String(repeating: "c", count: 129)),2\n")
                == PointsCSVError(line: 2, column: "contact", message: "must be 1–128 bytes long, is 129"))
    }

    @Test("M2 error: malformed email addresses")
    func badEmail() {
        for bad in ["ab", "abc", "@bc", "ab@", "a@b>", "<a@b", "a b@c", "a@b\tc", "\"a\nb@c\"", "a\u{A0}@b"] {
            let error = rejection("contact,points,email\na,1,\(bad)\n")
            #expect(error?.column == "email", "\(bad)")
            #expect(error?.line == 2, "\(bad)")
        }
        #expect(
            rejection("contact,points,email\na,1,\(String(repeating: "e", count: 251))@x.y\n")?.message
                == "must be 3–254 bytes long, is 255")
    }

    @Test("M2 error: an overlong field is rejected without buffering the rest of the input")
    func fieldLimit() {
        var reader = PointsCSVReader(knownGroups: [])
        var thrown: PointsCSVError?
        do {
            try reader.feed(Array("contact,points\na,\"".utf8)) { _ in }
            let chunk = [UInt8](repeating: 0x31, count: 1024)
            for _ in 0..<8 { try reader.feed(chunk) { _ in } }
        } catch let error as PointsCSVError {
            thrown = error
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(thrown == PointsCSVError(line: 2, column: "points", message: "the field is longer than 4096 bytes"))
    }

    @Test("M2: an error sticks; the reader rethrows it")
    func stickyError() throws {
        var reader = PointsCSVReader(knownGroups: [])
        #expect(throws: PointsCSVError.self) { try reader.feed(Array("contact,x\n".utf8)) { _ in } }
        #expect(
            throws: PointsCSVError(
                line: 1, column: "x", message: "unknown column \"x\"; the columns are contact, points, group and email")
        ) {
            try reader.feed(Array("a,1\n".utf8)) { _ in }
        }
        #expect(throws: PointsCSVError.self) { try reader.finish { _ in } }
    }

    @Test("M2: an error thrown by the row closure comes out of feed")
    func rowClosureError() {
        struct Stop: Error {}
        var reader = PointsCSVReader(knownGroups: [])
        #expect(throws: Stop.self) { try reader.feed(Array("contact,points\na,1\n".utf8)) { _ in throw Stop() } }
    }

    // MARK: Streaming

    static let boundaryInputs: [[UInt8]] =
        [
            "email,points,contact,group\nann@example.com,10,ann,sales\n,-5,bob,\n,+7,carol,beta\n\n",
            "contact,points,email\n\"a,b\",1,\n\"say \"\"hi\"\"\",\"2\",\"\"\n\"multi\nline\",3,\"x@y.z\"\n\"\",4a,\n",
            "contact,points,group\r\na,1,sales\r\n\"b\r\nc\",2,\r\n\"d\",3,\"beta\"\r\n\r\n",
            "contact,points\na,1\nb,2",
            "contact,points\na,1\nb,99999999999999999999\n",
            "contact,points,group\na,1,sales\nb,2,x\n",
            "contact,group\na,sales\n",
            "contact,points\na,1\nb,2,x\n",
            "contact,points\na,1\nb,\"2\nc,3\n",
            "contact,points\na,1\nb\"c,2\n",
            "contact,points\n\"a\"b,1\n",
            "contact,points\na,1\n\nb,2\n",
            "contact,points\na,1\n\n\n",
            "contact,points\na,1\rb,2\n",
            "contact,points\na,1\r",
            "contact,points\na,1\n,2\n",
            "contact,points,email\na,1,a b@c\n",
            "",
        ].map { Array($0.utf8) } + [
            [0xEF, 0xBB, 0xBF] + Array("contact,points\n\u{FEFF}a,1\n".utf8),
            [0xEF, 0xBB] + Array("contact,points\n".utf8),
            [0xEF],
            Array("contact,points\na,1\nb".utf8) + [0xC3, 0x28] + Array(",2\nc,3".utf8),
        ]

    @Test("M2: chunks of every size from 1 to 17 bytes read like the whole input", arguments: boundaryInputs)
    func chunkBoundaries(input: [UInt8]) {
        let whole = read(input)
        for size in 1...17 {
            #expect(read(input, chunk: size) == whole, "chunks of \(size) bytes")
        }
        // A collection without contiguous storage takes the copying path.
        var reader = PointsCSVReader(knownGroups: groups)
        var copied = Outcome()
        do {
            try reader.feed(AnyCollection(input)) { copied.rows.append($0) }
            try reader.finish { copied.rows.append($0) }
        } catch {
            copied.error = error as? PointsCSVError
        }
        #expect(copied == whole)
    }

    @Test("M2: random inputs read the same whole (fast path) and byte by byte (state machine)")
    func randomInputs() {
        let headers: [[String]] = [
            ["contact", "points", "email"], ["points", "contact"], ["group", "contact", "points"],
        ]
        let values: [[UInt8]] =
            [
                "a", "b1", "12", "-3", "+4", "0", "", "x@y", "sales", "\"q,\"\"x\"\"\"", "\"multi\nline\"", "\"7\"",
                "\"-8\"", "12a", " ", "a\"b", "\"a\"b", "\r", "99999999999999999999",
            ].map { Array($0.utf8) } + [[0xFF], [0xC3, 0xA9]]
        let ends = ["\n", "\n", "\n", "\r\n", "\r\n", "\n\n", "\r"].map { Array($0.utf8) }
        var random = SplitMix64(seed: 0xC5F)
        var rowsSeen = 0
        for _ in 0..<500 {
            let header = random.pick(headers)
            var input = Array(header.joined(separator: ",").utf8) + [0x0A]
            for _ in 0..<Int(random.next() % 6) {
                let fieldCount = header.count + (random.next() % 8 == 0 ? random.pick([-1, 1]) : 0)
                for field in 0..<fieldCount {
                    if field > 0 { input.append(0x2C) }
                    // Mostly plausible values, so that many records are read whole by the fast path.
                    let name = header[min(field, header.count - 1)]
                    if random.next() % 3 > 0 {
                        switch name {
                        case "points": input += Array(String(Int64(bitPattern: random.next()) % 1000).utf8)
                        case "group": input += random.pick([[], Array("sales".utf8)])
                        case "email": input += random.pick([[], Array("u@x.io".utf8)])
                        default: input += Array("c\(random.next() % 100)".utf8)
                        }
                    } else {
                        input += random.pick(values)
                    }
                }
                input += random.next() % 4 == 0 ? random.pick(ends) : [0x0A]
            }
            if random.next() % 3 == 0 { input.removeLast() }
            let whole = read(input)
            rowsSeen += whole.rows.count
            for size in [1, 2, 3, 5, 8] {
                #expect(read(input, chunk: size) == whole, "\(input) in chunks of \(size) bytes")
            }
        }
        #expect(rowsSeen > 200)
    }

    @Test("M2: 1,000,000 generated rows streamed in 64 KiB chunks")
    func millionRows() throws {
        let total = 1_000_000
        let chunkSize = 64 * 1024
        var reader = PointsCSVReader(knownGroups: groups)
        var count = 0
        var sum: Int64 = 0
        var lastLine = 0
        var withGroup = 0
        let onRow: (PointsImportRow) -> Void = { row in
            count += 1
            sum += row.points
            lastLine = row.line
            if row.group != nil { withGroup += 1 }
        }

        // Row i is "c" and i in seven digits, then one of 30 tails varying the sign, the group and the email.
        let tails: [(bytes: [UInt8], points: Int64)] = (0..<30).map { k in
            let points = (k % 2 == 1 ? -1 : 1) * Int64(k * 37)
            let group = k % 3 == 0 ? "sales" : ""
            let email = k % 5 == 0 ? "u\(k)@example.com" : ""
            return (Array(",\(points),\(group),\(email)\n".utf8), points)
        }
        var contact = Array("c0000000".utf8)
        var pending: [UInt8] = Array("contact,points,group,email\n".utf8)
        pending.reserveCapacity(chunkSize + 128)
        var expectedSum: Int64 = 0

        let clock = ContinuousClock()
        let start = clock.now
        for index in 0..<total {
            let tail = tails[index % tails.count]
            pending.append(contentsOf: contact)
            pending.append(contentsOf: tail.bytes)
            expectedSum += tail.points
            var digit = contact.count - 1
            while contact[digit] == 0x39 {
                contact[digit] = 0x30
                digit -= 1
            }
            contact[digit] += 1
            if pending.count >= chunkSize {
                try reader.feed(pending[..<chunkSize], onRow)
                pending.removeFirst(chunkSize)
            }
        }
        try reader.feed(pending, onRow)
        try reader.finish(onRow)
        let elapsed = clock.now - start

        #expect(count == total)
        #expect(reader.rows == total)
        #expect(sum == expectedSum)
        #expect(lastLine == total + 1)
        #expect(withGroup == (total + 2) / 3)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("PointsCSV: \(total) rows generated and read in \(elapsed) (\(Int(Double(total) / seconds)) rows/s)")
    }
}
