/// The kinds of call of the Segment HTTP Tracking API: a call's `type` in a batch, or the route of a single call.
public enum SegmentCallType: String, Sendable, CaseIterable {
    case track, page, identify, alias, screen, group
}

/// Where a Segment request came in: `POST /v1/batch`, or the route of one call (`POST /v1/track`, …).
public enum SegmentRoute: Sendable, Equatable {
    case batch
    case call(SegmentCallType)

    /// Every path and what it takes: the HTTP Tracking API's names, and the one-letter names analytics.js
    /// (analytics-next) posts to — `/v1/b` when it batches, else `/v1/t`, `/v1/p`, `/v1/i`, `/v1/a`, `/v1/g`,
    /// `/v1/s` — which Segment's own API accepts too.
    public static let paths: [(path: String, route: SegmentRoute)] =
        [("/v1/batch", .batch), ("/v1/b", .batch)]
        + SegmentCallType.allCases.flatMap { type in
            [("/v1/\(type.rawValue)", .call(type)), ("/v1/\(type.rawValue.prefix(1))", .call(type))]
        }
}

/// Why a call was acknowledged without appending an event (counted in `/metrics`, I6).
public enum SegmentIgnoredReason: String, Sendable, CaseIterable {
    /// A `track` whose `event` is neither in `segment.events` nor a behaviour type's name.
    case unmappedEvent = "unmapped_event"
    /// An `identify` with one id (or both ids equal), an `alias` of an id to itself: nothing to merge.
    case oneIdentity = "one_identity"
    /// `screen` and `group`, which have no behaviour type.
    case unsupportedType = "unsupported_type"
}

/// A call that cannot be taken; ``field`` is its path in the request body (`batch[3].properties.url`, or
/// `properties.url` for a single call). The whole request is refused (I6).
public struct SegmentCallError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// The events of one Segment request, and what was acknowledged without an event.
public struct SegmentBatch: Sendable, Equatable {
    /// Behaviours and merges, in call order: appended together or not at all.
    public var events: [Event] = []
    /// The number of calls in the request.
    public var calls = 0
    /// Calls acknowledged without an event, by reason.
    public var ignored: [SegmentIgnoredReason: Int] = [:]

    public init(events: [Event] = [], calls: Int = 0, ignored: [SegmentIgnoredReason: Int] = [:]) {
        self.events = events
        self.calls = calls
        self.ignored = ignored
    }
}

/// How Segment calls (analytics.js, RudderStack, Jitsu) become Tally events (SPEC I6).
///
/// The contact is `userId`, else `anonymousId`; `messageId` is the event's `id` (S6); `timestamp` its `at` (the
/// receive time when absent); `context.sessionId` its session. `page` is a `url.hit` of `properties.url`, else
/// `context.page.url`. `track` becomes the behaviour type its `event` maps to (``events``, or a behaviour type's
/// own name), with the item from `properties[itemProperty]`. `identify` with two different ids and `alias` become
/// `contact.merge` events (I2). Pure: no clock, no I/O.
public struct SegmentMapping: Sendable, Equatable {
    /// `segment.events`: track event names and the behaviour types they become.
    public var events: [String: EventType]
    /// `segment.item_property`: the property of a `track` call that names the event's item.
    public var itemProperty: String

    public init(events: [String: EventType] = [:], itemProperty: String = "item") {
        self.events = events
        self.itemProperty = itemProperty
    }

    /// The behaviour type a `track` event name maps to; nil when unmapped.
    public func type(ofTrack name: String) -> EventType? {
        if let type = events[name] { return type }
        guard let type = EventType(name: name), type.isBehaviour else { return nil }
        return type
    }

    /// The `writeKey` in a request body, which Segment's clients send there as well as (or instead of) in the
    /// Basic-auth user name.
    public static func writeKey(in body: JSONValue) -> String? {
        guard case .string(let key)? = body["writeKey"], !key.isEmpty else { return nil }
        return key
    }

    /// Maps a request body. `viaIngest` marks the merges as asked on the ingest socket (I1).
    public func batch(
        _ body: JSONValue, route: SegmentRoute, receivedAt: Int64, viaIngest: Bool
    ) throws(SegmentCallError) -> SegmentBatch {
        var result = SegmentBatch()
        switch route {
        case .batch:
            guard case .object = body else {
                throw SegmentCallError(field: "batch", message: "the body must be a JSON object with a \"batch\" list")
            }
            guard case .array(let calls)? = body["batch"] else {
                throw SegmentCallError(field: "batch", message: "must be a list of calls")
            }
            guard !calls.isEmpty else { throw SegmentCallError(field: "batch", message: "holds no call") }
            // A batch's own context applies to every call that does not set the same key (Segment's rule).
            let shared = body["context"]
            for (index, call) in calls.enumerated() {
                try add(
                    call, path: "batch[\(index)].", expected: nil, sharedContext: shared, receivedAt: receivedAt,
                    viaIngest: viaIngest, to: &result)
            }
        case .call(let type):
            try add(
                body, path: "", expected: type, sharedContext: nil, receivedAt: receivedAt, viaIngest: viaIngest,
                to: &result)
        }
        return result
    }

    private func add(
        _ call: JSONValue, path: String, expected: SegmentCallType?, sharedContext: JSONValue?, receivedAt: Int64,
        viaIngest: Bool, to result: inout SegmentBatch
    ) throws(SegmentCallError) {
        result.calls += 1
        let reader = CallReader(call: call, path: path, sharedContext: sharedContext)
        guard case .object = call else {
            throw SegmentCallError(
                field: path.isEmpty ? "body" : String(path.dropLast()), message: "must be a JSON object")
        }
        let type = try reader.type(expected: expected)
        func ignore(_ reason: SegmentIgnoredReason) { result.ignored[reason, default: 0] += 1 }
        switch type {
        case .screen, .group:
            ignore(.unsupportedType)
            return
        case .identify:
            let user = try reader.identifier("userId")
            let anonymous = try reader.identifier("anonymousId")
            guard user != nil || anonymous != nil else {
                throw SegmentCallError(field: path + "userId", message: "userId or anonymousId is required")
            }
            guard let user, let anonymous, !user.utf8.elementsEqual(anonymous.utf8) else {
                ignore(.oneIdentity)
                return
            }
            let at = try reader.timestamp(receivedAt: receivedAt)
            let id = try reader.messageID()
            result.events.append(Event.merge(from: anonymous, into: user, at: at, id: id, viaIngest: viaIngest))
        case .alias:
            guard let previous = try reader.identifier("previousId") else {
                throw SegmentCallError(field: path + "previousId", message: "is required for an alias call")
            }
            guard let user = try reader.identifier("userId") else {
                throw SegmentCallError(field: path + "userId", message: "is required for an alias call")
            }
            guard !previous.utf8.elementsEqual(user.utf8) else {
                ignore(.oneIdentity)
                return
            }
            let at = try reader.timestamp(receivedAt: receivedAt)
            let id = try reader.messageID()
            result.events.append(Event.merge(from: previous, into: user, at: at, id: id, viaIngest: viaIngest))
        case .page:
            var event = try reader.behaviour(.urlHit, receivedAt: receivedAt)
            event.url = try reader.url()
            result.events.append(event)
        case .track:
            guard let name = try reader.string("event") else {
                throw SegmentCallError(field: path + "event", message: "is required for a track call")
            }
            // The contact, id and time are checked before the mapping: a call no client could send right is
            // refused whether or not its event is mapped.
            var event = try reader.behaviour(.urlHit, receivedAt: receivedAt)
            guard let behaviour = self.type(ofTrack: name) else {
                ignore(.unmappedEvent)
                return
            }
            event.type = behaviour
            if behaviour.requiresItem {
                event.item = try reader.item(property: itemProperty, for: behaviour, event: name)
            }
            if behaviour.requiresURL { event.url = try reader.url() }
            result.events.append(event)
        }
    }
}

/// Reads the fields of one call, naming each by its path in the request when it is wrong.
private struct CallReader {
    let call: JSONValue
    let path: String
    let sharedContext: JSONValue?

    func error(_ field: String, _ message: String) -> SegmentCallError {
        SegmentCallError(field: path + field, message: message)
    }

    func type(expected: SegmentCallType?) throws(SegmentCallError) -> SegmentCallType {
        let names = SegmentCallType.allCases.map(\.rawValue).joined(separator: ", ")
        guard let text = try string("type") else {
            if let expected { return expected }
            throw error("type", "is required in a batch (one of \(names))")
        }
        guard let type = SegmentCallType(rawValue: text) else {
            throw error("type", "must be one of \(names), is \"\(text)\"")
        }
        if let expected, type != expected {
            throw error("type", "is \"\(text)\" on the route of \(expected.rawValue) calls")
        }
        return type
    }

    /// A string member; `null`, absent and empty read as nil. Integers are taken as their decimal text, as
    /// Segment's own API does for ids.
    func string(
        _ key: String, in object: JSONValue? = nil, field: String? = nil
    ) throws(SegmentCallError)
        -> String?
    {
        try text((object ?? call)[key], field: field ?? key)
    }

    /// A value read as a string: see ``string(_:in:field:)``.
    func text(_ value: JSONValue?, field: String) throws(SegmentCallError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text.isEmpty ? nil : text
        case .integer(let value)?: return String(value)
        case let value?: throw error(field, "must be a string, is \(value.typeName)")
        }
    }

    func sized(_ text: String?, _ field: String, _ limit: ClosedRange<Int>) throws(SegmentCallError) -> String? {
        guard let text else { return nil }
        guard limit.contains(text.utf8.count) else {
            throw error(field, "must be \(limit.lowerBound)–\(limit.upperBound) bytes long, is \(text.utf8.count)")
        }
        return text
    }

    func identifier(_ key: String) throws(SegmentCallError) -> String? {
        try sized(try string(key), key, EventLimits.contact)
    }

    func messageID() throws(SegmentCallError) -> String? {
        try sized(try string("messageId"), "messageId", EventLimits.id)
    }

    func timestamp(receivedAt: Int64) throws(SegmentCallError) -> Int64 {
        guard let text = try string("timestamp") else { return receivedAt }
        guard let at = Timestamp.parse(text) else {
            throw error("timestamp", "must be an RFC 3339 time such as 2026-11-30T23:47:30.437+00:00, is \"\(text)\"")
        }
        return at
    }

    /// An object member (`properties`, `context`); nil when absent or null.
    func object(
        _ key: String, in parent: JSONValue? = nil, field: String? = nil
    ) throws(SegmentCallError)
        -> JSONValue?
    {
        guard let value = (parent ?? call)[key], !value.isNull else { return nil }
        guard case .object = value else { throw error(field ?? key, "must be an object, is \(value.typeName)") }
        return value
    }

    /// `context.KEY` of the call, else of the batch.
    func context(_ key: String) throws(SegmentCallError) -> (JSONValue, String)? {
        if let context = try object("context"), let value = context[key], !value.isNull {
            return (value, "context.\(key)")
        }
        if let shared = sharedContext, case .object = shared, let value = shared[key], !value.isNull {
            return (value, "context.\(key)")
        }
        return nil
    }

    /// A contact's behaviour: the contact, `messageId`, `timestamp` and `context.sessionId`.
    func behaviour(_ type: EventType, receivedAt: Int64) throws(SegmentCallError) -> Event {
        let user = try identifier("userId")
        let anonymous = try identifier("anonymousId")
        guard let contact = user ?? anonymous else {
            throw error("userId", "userId or anonymousId is required")
        }
        var session: String?
        if let (value, field) = try context("sessionId") {
            // RudderStack's JavaScript SDK sends the session as a number.
            session = try sized(try text(value, field: field), field, EventLimits.session)
        }
        return Event(
            type: type, contact: contact, at: try timestamp(receivedAt: receivedAt), id: try messageID(),
            session: session)
    }

    /// `properties.url`, else `context.page.url`: required, absolute.
    func url() throws(SegmentCallError) -> String {
        var found: (String, String)?
        if let properties = try object("properties"),
            let url = try string("url", in: properties, field: "properties.url")
        {
            found = (url, "properties.url")
        } else if let (page, field) = try context("page") {
            guard case .object = page else { throw error(field, "must be an object, is \(page.typeName)") }
            if let url = try string("url", in: page, field: field + ".url") { found = (url, field + ".url") }
        }
        guard let (url, field) = found else {
            throw error("properties.url", "is required (or context.page.url): the page's absolute URL")
        }
        _ = try sized(url, field, EventLimits.url)
        guard URLPattern.isAbsolute(url) else { throw error(field, "must be an absolute URL (scheme://…)") }
        return url
    }

    /// `properties[property]` of a track call whose type needs an item.
    func item(property: String, for type: EventType, event name: String) throws(SegmentCallError) -> String {
        let field = "properties.\(property)"
        guard let properties = try object("properties"),
            let item = try string(property, in: properties, field: field)
        else {
            throw error(field, "is required: \"\(name)\" is \(type.name), which names an item")
        }
        return try sized(item, field, EventLimits.item) ?? item
    }
}
