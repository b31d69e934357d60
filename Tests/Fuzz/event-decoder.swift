// libFuzzer target: the ingest decoder (SPEC §1) on arbitrary bytes. Built and run by scripts/fuzz.
import TallyCore

/// The `receivedAt` given to the decoder, so that a defaulted `at` is recognisable.
private let received: Int64 = 1_700_000_000_123

@_cdecl("LLVMFuzzerTestOneInput")
public func eventDecoderFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let decoder = EventDecoder(receivedAt: received)

    // One JSON document (application/json).
    let single = decodeOne(decoder, bytes)
    switch single {
    case .success(let event): checkAccepted(event, decoder: decoder)
    case .failure(let error): require(error.line == 1, "single document error on line \(error.line): \(error)")
    }
    // The line number given is the one reported.
    if case .failure(let error) = decodeOne(decoder, bytes, line: 7) {
        require(error.line == 7, "decode(line: 7) reported line \(error.line)")
    }

    // NDJSON (application/x-ndjson).
    let lines = split(bytes)
    switch Result(catching: { () throws(EventDecodingError) -> [Event] in try decoder.decodeLines(bytes) }) {
    case .success(let events):
        let nonBlank = lines.filter { !isBlank($0) }
        require(events.count == nonBlank.count, "\(events.count) events from \(nonBlank.count) non-blank lines")
        for (event, line) in zip(events, nonBlank) {
            checkAccepted(event, decoder: decoder)
            let again = decodeOne(decoder, line)
            require(again == .success(event), "line decoded alone gives \(again), in the body \(event)")
        }
    case .failure(let error):
        require((1...max(lines.count, 1)).contains(error.line), "error on line \(error.line) of \(lines.count)")
        // The lines before the failing one are valid on their own, the failing one is not.
        if error.line <= lines.count {
            let bad = lines[error.line - 1]
            let alone = decodeOne(decoder, bad, line: error.line)
            require(alone == .failure(error), "failing line decoded alone gives \(alone), in the body \(error)")
            for line in lines[..<(error.line - 1)] where !isBlank(line) {
                if case .failure(let earlier) = decodeOne(decoder, line) {
                    require(false, "an earlier line fails alone (\(earlier)) but the body failed later: \(error)")
                }
            }
        }
    }

    // The ingest path's packed records decide as the events do: the same errors, and per event the same type and id
    // (their bytes are compared with the log's codec by PackedEventsTests).
    let packed = Result { () throws(EventDecodingError) -> PackedEvents in
        try decoder.packBody(bytes, contentType: "application/x-ndjson", maxLineBytes: .max)
    }
    switch (packed, Result { () throws(EventDecodingError) -> [Event] in try decoder.decodeLines(bytes) }) {
    case (.success(let packed), .success(let events)):
        require(packed.count == events.count, "\(packed.count) packed records, \(events.count) events")
        for (entry, event) in zip(packed.entries, events) {
            require(entry.type == event.type, "packed type \(entry.type), event \(event.type)")
            let id = entry.id.map { Array(packed.bytes[$0]) }
            require(id == event.id.map { Array($0.utf8) }, "packed id \(String(describing: id)), event \(event)")
        }
    case (.failure(let packedError), .failure(let error)):
        require(packedError == error, "packed: \(packedError), events: \(error)")
    case (let packed, let events):
        require(false, "packed: \(packed), events: \(events)")
    }

    // Without a newline, a non-blank body means the same in both content types.
    if !bytes.contains(0x0A), !isBlank(bytes) {
        let asLines = Result { () throws(EventDecodingError) -> [Event] in try decoder.decodeLines(bytes) }
        require(asLines.map { $0 } == single.map { [$0] }, "NDJSON \(asLines) vs JSON \(single)")
    }
    return 0
}

/// The invariants of an accepted event, and that it survives being written back as JSON.
private func checkAccepted(_ event: Event, decoder: EventDecoder) {
    require(event.type.isBehaviour, "administrative type \(event.type) accepted")
    require(EventLimits.contact.contains(event.contact.utf8.count), "contact of \(event.contact.utf8.count) bytes")
    check(event.id, EventLimits.id, "id")
    check(event.item, EventLimits.item, "item")
    check(event.url, EventLimits.url, "url")
    check(event.session, EventLimits.session, "session")
    require((event.item != nil) == event.type.requiresItem, "item \(String(describing: event.item)) for \(event.type)")
    require((event.url != nil) == event.type.requiresURL, "url \(String(describing: event.url)) for \(event.type)")
    if let url = event.url { require(URLPattern.isAbsolute(url), "relative url \(url) accepted") }
    require(event.email == nil && event.ownerEmail == nil, "contact.update fields on a behaviour")
    require(event.at == received || Timestamp.validRange.contains(event.at), "at \(event.at) out of range")
    do {
        try event.validate()
    } catch {
        require(false, "accepted event fails validate(): \(error)")
    }
    // Timestamps: formatting then parsing gives the same instant.
    let formatted = Timestamp.format(event.at)
    require(Timestamp.parse(formatted) == event.at, "\(event.at) formats as \(formatted), which parses differently")
    // Writing the event back as JSON (both `at` forms) and decoding it gives the same event.
    for asText in [false, true] {
        let json = Array(encodeJSON(event, atAsText: asText).utf8)
        let again = json.withUnsafeBytes { decodeOne(decoder, $0) }
        require(again == .success(event), "re-encoded \(String(decoding: json, as: UTF8.self)) gives \(again)")
    }
}

private func decodeOne(
    _ decoder: EventDecoder, _ bytes: UnsafeRawBufferPointer, line: Int = 1
) -> Result<Event, EventDecodingError> {
    Result { () throws(EventDecodingError) -> Event in try decoder.decode(bytes, line: line) }
}

private func check(_ value: String?, _ limit: ClosedRange<Int>, _ field: String) {
    guard let value else { return }
    require(limit.contains(value.utf8.count), "\(field) of \(value.utf8.count) bytes accepted")
}

private func encodeJSON(_ event: Event, atAsText: Bool) -> String {
    var fields = ["\"type\":\(quote(event.type.name))", "\"contact\":\(quote(event.contact))"]
    fields.append("\"at\":" + (atAsText ? quote(Timestamp.format(event.at)) : String(event.at)))
    for (name, value) in [("id", event.id), ("item", event.item), ("url", event.url), ("session", event.session)] {
        if let value { fields.append("\(quote(name)):\(quote(value))") }
    }
    return "{" + fields.joined(separator: ",") + "}"
}

private func quote(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\u{0}"..."\u{1F}":
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// The body's lines as `decodeLines` sees them: split at LF, no empty last line after a final LF.
private func split(_ bytes: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
    var lines: [UnsafeRawBufferPointer] = []
    var start = 0
    while start < bytes.count {
        var end = start
        while end < bytes.count, bytes[end] != 0x0A { end += 1 }
        lines.append(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        start = end + 1
    }
    return lines
}

private func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
    line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
}

private func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("event-decoder invariant: \(message())") }
}
