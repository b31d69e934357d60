// libFuzzer target: the ingest socket's HTTP/1 request path without sockets. Raw bytes go through SwiftNIO's
// server pipeline (HTTPRequestDecoder, as Hummingbird configures it) in an EmbeddedChannel; every complete
// request then gets the body handling of `Routes.postEvents` (copied here: TallyServer imports Hummingbird)
// or the pixel's parameter handling (a mirror of `Pixel.handle`, ending in the real `Event.validate()`).
// Built and run by scripts/fuzz.
import NIOCore
import NIOEmbedded
import NIOHTTP1
import TallyCore

/// `Limits.maxLineBytes`' default (Sources/TallyEngine/Configuration.swift).
private let maxLineBytes = 64 << 10
private let received: Int64 = 1_700_000_000_123

@_cdecl("LLVMFuzzerTestOneInput")
public func httpRequestFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let channel = EmbeddedChannel()
    do {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: .init())
    } catch {
        fatalError("http-request: pipeline setup failed: \(error)")
    }
    var buffer = channel.allocator.buffer(capacity: size)
    buffer.writeBytes(UnsafeRawBufferPointer(start: data, count: size))

    var head: HTTPRequestHead?
    var body = channel.allocator.buffer(capacity: 0)
    func drain() throws {
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let h):
                precondition(head == nil, "http-request: a head inside a request")
                head = h
                body.clear()
            case .body(var chunk):
                precondition(head != nil, "http-request: a body part without a head")
                body.writeBuffer(&chunk)
            case .end:
                guard let request = head else { fatalError("http-request: an end without a head") }
                handle(request, body)
                head = nil
            }
        }
    }
    do {
        try channel.writeInbound(buffer)
        try drain()
        // The client half-closes: a request without a length ends here.
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        try drain()
    } catch {
        // A malformed request: the server answers 400 and closes the connection.
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return 0
}

private func handle(_ head: HTTPRequestHead, _ body: ByteBuffer) {
    let (path, query) = splitURI(head.uri)
    switch (head.method, path) {
    case (.POST, "/v1/events"): postEvents(head, body)
    case (.GET, "/v1/pixel.gif"): pixel(head, query)
    default: break
    }
}

/// `Routes.postEvents` between collecting the body and appending the events: the same `packBody`, and `decodeBody`
/// to check what it accepted.
private func postEvents(_ head: HTTPRequestHead, _ body: ByteBuffer) {
    // Hummingbird's `request.headers[.contentType]` joins repeated fields with ", ".
    let contentType = head.headers["content-type"].joined(separator: ", ")
    let decoder = EventDecoder(receivedAt: received)
    let result = body.withUnsafeReadableBytes { bytes in
        Result { () throws(EventDecodingError) -> [Event] in
            try decoder.decodeBody(bytes, contentType: contentType, maxLineBytes: maxLineBytes)
        }
    }
    let packed = body.withUnsafeReadableBytes { bytes in
        Result { () throws(EventDecodingError) -> PackedEvents in
            try decoder.packBody(bytes, contentType: contentType, maxLineBytes: maxLineBytes)
        }
    }
    switch (packed, result) {
    case (.success(let packed), .success(let events)):
        precondition(packed.count == events.count, "http-request: \(packed.count) records for \(events.count) events")
    case (.failure(let packedError), .failure(let error)):
        precondition(packedError == error, "http-request: packBody \(packedError), decodeBody \(error)")
    default:
        fatalError("http-request: packBody \(packed), decodeBody \(result)")
    }
    switch result {
    case .success(let events):
        for event in events {
            do {
                try event.validate()
            } catch {
                fatalError("http-request: accepted event fails validate(): \(error)")
            }
            precondition(event.type.isBehaviour, "http-request: administrative event accepted on ingest")
        }
    case .failure(let error):
        precondition(error.line >= 1, "http-request: error without a line: \(error)")
        precondition(!error.isAdministrative || error.field == "type", "http-request: 403 not about the type")
    }
}

/// A mirror of `Pixel.handle`: parameters from the query, else the cookies; then the real `Event.validate()`.
private func pixel(_ head: HTTPRequestHead, _ query: Substring?) {
    var parameters: [Substring: Substring] = [:]
    for pair in (query ?? "").split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let value = parts.count == 2 ? (percentDecode(parts[1]).map { $0[...] } ?? parts[1]) : ""
        if parameters[parts[0]] == nil { parameters[parts[0]] = value }
    }
    var cookies: [String: String] = [:]
    for header in head.headers["cookie"] {
        for pair in header.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = trim(parts[0])
            let value = trim(parts[1])
            cookies[name] = percentDecode(value[...]) ?? value
        }
    }
    func nonEmpty(_ value: Substring?) -> String? { value.flatMap { $0.isEmpty ? nil : String($0) } }
    // No contact from the query or the cookies: an anonymous visitor under a new id (I7), as long as the id.
    let contact =
        nonEmpty(parameters["contact"]) ?? cookies["tally_contact"] ?? cookies["tally_anon"]
        ?? "anon-abcdefghijklmnopqrstuvwxyz"
    let event = Event(
        type: .urlHit, contact: contact, at: received,
        id: nonEmpty(parameters["id"]), url: nonEmpty(parameters["url"]),
        session: nonEmpty(parameters["session"]) ?? cookies["tally_session"])
    do {
        try event.validate()
        precondition(EventLimits.contact.contains(event.contact.utf8.count), "http-request: pixel contact size")
        precondition(event.url.map(URLPattern.isAbsolute) == true, "http-request: pixel url not absolute")
    } catch {
        precondition(error.line == 1 && error.field != nil, "http-request: pixel rejection without a field: \(error)")
    }
}

private func splitURI(_ uri: String) -> (path: Substring, query: Substring?) {
    guard let mark = uri.firstIndex(of: "?") else { return (uri[...], nil) }
    return (uri[..<mark], uri[uri.index(after: mark)...])
}

private func trim(_ text: Substring) -> String {
    String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
}

/// `%XX` decoding; nil when an escape is malformed or the result is not UTF-8.
private func percentDecode(_ text: Substring) -> String? {
    var out: [UInt8] = []
    var utf8 = text.utf8.makeIterator()
    while let byte = utf8.next() {
        guard byte == 0x25 else {
            out.append(byte)
            continue
        }
        guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return nil }
        out.append(high << 4 | low)
    }
    return String(validating: out, as: UTF8.self)
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    case 0x61...0x66: byte - 0x61 + 10
    default: nil
    }
}
