/// A message as NATS delivers it (`MSG` or `HMSG`): its subject, the subject to reply to, its headers and payload.
public struct NATSMessage: Sendable, Equatable {
    public var subject: String
    public var replyTo: String?
    /// The headers of an `HMSG`; nil for a plain `MSG`.
    public var headers: NATSHeaders?
    public var payload: [UInt8]

    public init(subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]) {
        self.subject = subject
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
    }

    /// The status code of a status message (`NATS/1.0 404 No Messages`, `503` no responders), nil for a message
    /// that carries data.
    public var status: Int? { headers?.status }
}

/// The header block of an `HPUB` or `HMSG`: the `NATS/1.0` line with an optional status, then `Name: value` lines.
///
/// Names keep their case; ``subscript(_:)`` finds a name as written first, then ignoring ASCII case (servers and
/// clients write `Nats-Msg-Id`, HTTP-style tools `nats-msg-id`).
public struct NATSHeaders: Sendable, Equatable {
    public var status: Int?
    public var statusDescription: String?
    public private(set) var fields: [Field]

    /// One header line.
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { Field(name: $0.0, value: $0.1) }
    }

    /// The first value of `name`.
    public subscript(name: String) -> String? {
        if let field = fields.first(where: { $0.name == name }) { return field.value }
        let lowered = name.lowercased()
        return fields.first(where: { $0.name.lowercased() == lowered })?.value
    }

    /// Adds a header line.
    public mutating func append(_ name: String, _ value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// The block as written on the wire, ending with the empty line.
    func encoded() -> [UInt8] {
        var bytes = Array("NATS/1.0".utf8)
        if let status {
            bytes += Array(" \(status)".utf8)
            if let statusDescription { bytes += Array(" \(statusDescription)".utf8) }
        }
        bytes += [13, 10]
        for field in fields {
            bytes += Array(field.name.utf8)
            bytes += Array(": ".utf8)
            bytes += Array(field.value.utf8)
            bytes += [13, 10]
        }
        bytes += [13, 10]
        return bytes
    }

    /// Parses a header block as received (with or without its final empty line).
    static func parse(_ block: ArraySlice<UInt8>) throws(NATSError) -> NATSHeaders {
        let lines = String(decoding: block, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: true)
        guard let first = lines.first, first.hasPrefix("NATS/1.0") else {
            throw NATSError.protocolViolation("a header block that does not start with NATS/1.0")
        }
        var headers = NATSHeaders()
        let statusLine = first.dropFirst("NATS/1.0".count).drop(while: { $0 == " " })
        if !statusLine.isEmpty {
            let parts = statusLine.split(separator: " ", maxSplits: 1)
            headers.status = Int(parts[0])
            if parts.count > 1 { headers.statusDescription = String(parts[1]) }
        }
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else {
                throw NATSError.protocolViolation("a header line without a colon: \(line)")
            }
            headers.append(
                String(line[..<colon]), String(line[line.index(after: colon)...].drop(while: { $0 == " " })))
        }
        return headers
    }
}
