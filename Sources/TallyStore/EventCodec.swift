public import TallyCore

/// The compact binary encoding of an event in the log (see Docs/format.md).
///
/// ```
/// u8 format (1) · u8 type code · i64 LE at · u8 presence bits (id, item, url, session, email, owner email,
/// unused, extended) · [u8 extended presence bits (group, reason, text, value, operation, fields, origin clock) when
/// bit 7 is set] · varint length + UTF-8 contact · each present string field as varint length + UTF-8, in bit order
/// · [i64 LE value] · [u8 operation code] · [fields: varint count ≥ 1, then per field in name order: varint length
/// + UTF-8 name · u8 value type (0 removed, 1 string, 2 number) · varint length + UTF-8 string | i64 LE double bits]
/// · [i64 LE origin clock]
/// ```
///
/// Behaviour events never set the extended bits, so their records are the same as before administrative events
/// existed.
public enum EventCodec {
    static let format: UInt8 = 1
    static let extended: UInt8 = 0x80

    public static func encode(_ event: Event) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(
            24 + event.contact.utf8.count + (event.url?.utf8.count ?? 0) + (event.text?.utf8.count ?? 0))
        encode(event, into: &bytes)
        return bytes
    }

    /// Encodes `event` into `bytes`, replacing what it held but keeping its capacity: the append path reuses one
    /// buffer for every event of a batch.
    public static func encode(_ event: Event, into bytes: inout [UInt8]) {
        var writer = ByteWriter(capacity: 0)  // takes `bytes`' buffer: nothing of its own to allocate
        swap(&writer.bytes, &bytes)
        defer { swap(&writer.bytes, &bytes) }
        writer.bytes.removeAll(keepingCapacity: true)
        writer.u8(format)
        writer.u8(event.type.rawValue)
        writer.int64(event.at)
        // Written field by field, without collecting them in arrays: this runs once per ingested event.
        var bits: UInt8 = 0
        if event.id != nil { bits |= 1 << 0 }
        if event.item != nil { bits |= 1 << 1 }
        if event.url != nil { bits |= 1 << 2 }
        if event.session != nil { bits |= 1 << 3 }
        if event.email != nil { bits |= 1 << 4 }
        if event.ownerEmail != nil { bits |= 1 << 5 }
        var extendedBits: UInt8 = 0
        if event.group != nil { extendedBits |= 1 << 0 }
        if event.reason != nil { extendedBits |= 1 << 1 }
        if event.text != nil { extendedBits |= 1 << 2 }
        if event.value != nil { extendedBits |= 1 << 3 }
        if event.operation != nil { extendedBits |= 1 << 4 }
        if !event.fields.isEmpty { extendedBits |= 1 << 5 }
        if event.originClock != nil { extendedBits |= 1 << 6 }
        if extendedBits != 0 { bits |= extended }
        writer.u8(bits)
        if extendedBits != 0 { writer.u8(extendedBits) }
        writer.string(event.contact)
        if let id = event.id { writer.string(id) }
        if let item = event.item { writer.string(item) }
        if let url = event.url { writer.string(url) }
        if let session = event.session { writer.string(session) }
        if let email = event.email { writer.string(email) }
        if let ownerEmail = event.ownerEmail { writer.string(ownerEmail) }
        if let group = event.group { writer.string(group) }
        if let reason = event.reason { writer.string(reason) }
        if let text = event.text { writer.string(text) }
        if let value = event.value { writer.int64(value) }
        if let operation = event.operation { writer.u8(operation.rawValue) }
        if !event.fields.isEmpty {
            writer.varint(UInt64(event.fields.count))
            for update in event.fields {
                writer.string(update.name)
                if let value = update.value { writer.fieldValue(value) } else { writer.u8(0) }
            }
        }
        if let clock = event.originClock { writer.int64(clock) }
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(CorruptRecordError) -> Event {
        var reader = ByteReader(bytes, table: "events")
        guard try reader.u8() == format else { throw reader.corrupt("unknown event format") }
        let code = try reader.u8()
        guard let type = EventType(rawValue: code) else { throw reader.corrupt("unknown event type \(code)") }
        let at = try reader.int64()
        let bits = try reader.u8()
        guard bits & 0x40 == 0 else { throw reader.corrupt("unknown presence bits") }
        let extendedBits = bits & extended != 0 ? try reader.u8() : 0
        guard bits & extended == 0 || (extendedBits != 0 && extendedBits & 0x80 == 0) else {
            throw reader.corrupt("unknown extended presence bits")
        }
        let contact = try reader.string()
        // Read field by field into locals (no arrays): this runs once per event folded.
        func optional(_ present: Bool) throws(CorruptRecordError) -> String? { present ? try reader.string() : nil }
        let id = try optional(bits & 1 != 0)
        let item = try optional(bits & 2 != 0)
        let url = try optional(bits & 4 != 0)
        let session = try optional(bits & 8 != 0)
        let email = try optional(bits & 16 != 0)
        let ownerEmail = try optional(bits & 32 != 0)
        let group = try optional(extendedBits & 1 != 0)
        let reason = try optional(extendedBits & 2 != 0)
        let text = try optional(extendedBits & 4 != 0)
        let value = extendedBits & (1 << 3) != 0 ? try reader.int64() : nil
        var operation: PointsOperation?
        if extendedBits & (1 << 4) != 0 {
            let code = try reader.u8()
            guard let known = PointsOperation(rawValue: code) else { throw reader.corrupt("unknown operation \(code)") }
            operation = known
        }
        var fields: [FieldUpdate] = []
        if extendedBits & (1 << 5) != 0 {
            let count = try reader.varint()
            guard (1...UInt64(FieldLimits.perContact)).contains(count) else {
                throw reader.corrupt("\(count) fields in one update")
            }
            fields.reserveCapacity(Int(count))
            for _ in 0..<count {
                let name = try reader.string(limit: 64)
                let tag = try reader.u8()
                fields.append(FieldUpdate(name: name, value: tag == 0 ? nil : try reader.fieldValue(tag: tag)))
            }
        }
        let originClock = extendedBits & (1 << 6) != 0 ? try reader.int64() : nil
        guard reader.isAtEnd else { throw reader.corrupt("trailing bytes") }
        return Event(
            type: type, contact: contact, at: at, id: id, item: item, url: url, session: session, email: email,
            ownerEmail: ownerEmail, group: group, reason: reason, text: text, value: value, operation: operation,
            fields: fields, originClock: originClock)
    }

    public static func decode(_ bytes: [UInt8]) throws -> Event {
        try bytes.withUnsafeBytes { raw in try decode(raw) }
    }
}

/// The binary encoding of a contact's projected state (see Docs/format.md); format 2 added the caps (C1, C2) and
/// the `rearm` triggers' records (T9) at the end, format 3 the fields (F1) and the fit scores' awards (F2), format 4
/// the known flag (I1) as a last byte.
public enum ContactCodec {
    static let format: UInt8 = 4

    public static func encode(_ state: ContactState) -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.u8(format)
        writer.int64(state.points)
        writer.varint(UInt64(state.groups.count))
        for group in sortedKeys(state.groups) {
            writer.string(group)
            writer.int64(state.groups[group] ?? 0)
        }
        writer.sortedStrings(state.awarded)
        writer.varint(UInt64(state.visits.count))
        for pattern in sortedKeys(state.visits) {
            let stats = state.visits[pattern] ?? VisitStats()
            writer.string(pattern.string)
            writer.int64(stats.hits)
            writer.int64(stats.dwell)
            writer.u8(stats.lastAt == nil ? 0 : 1)
            if let lastAt = stats.lastAt { writer.int64(lastAt) }
        }
        writer.sortedStrings(state.fired)
        writer.sortedStrings(state.tags)
        writer.sortedStrings(state.segments)
        writer.sortedStrings(state.campaigns)
        writer.optionalString(state.email)
        writer.optionalString(state.ownerEmail)
        writer.varint(UInt64(state.caps.count))
        for action in sortedKeys(state.caps) {
            let cap = state.caps[action] ?? CapState()
            writer.string(action)
            writer.int64(cap.count)
            writer.varint(UInt64(cap.recent.count))
            for at in cap.recent { writer.int64(at) }
            writer.u8(cap.forgotten == nil ? 0 : 1)
            if let forgotten = cap.forgotten { writer.int64(forgotten) }
        }
        writer.varint(UInt64(state.rearms.count))
        for trigger in sortedKeys(state.rearms) {
            let record = state.rearms[trigger] ?? RearmState(firings: 0, armed: false)
            writer.string(trigger)
            writer.int64(record.firings)
            writer.u8(record.armed ? 1 : 0)
        }
        writer.varint(UInt64(state.fields.count))
        for name in sortedKeys(state.fields) {
            writer.string(name)
            writer.fieldValue(state.fields[name] ?? .string(""))
        }
        writer.varint(UInt64(state.fieldAwards.count))
        for action in sortedKeys(state.fieldAwards) {
            let award = state.fieldAwards[action] ?? FieldAward(group: nil, delta: 0)
            writer.string(action)
            writer.optionalString(award.group)
            writer.int64(award.delta)
        }
        writer.u8(state.known ? 1 : 0)
        return writer.bytes
    }

    /// A dictionary's keys in order (the encoding is canonical: `verify` compares records byte for byte); most
    /// states have none or one, which need no sorting.
    private static func sortedKeys<Key: Comparable, Value>(_ dictionary: [Key: Value]) -> [Key] {
        dictionary.count < 2 ? Array(dictionary.keys) : dictionary.keys.sorted()
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(CorruptRecordError) -> ContactState {
        var reader = ByteReader(bytes, table: "contacts")
        guard try reader.u8() == format else { throw reader.corrupt("unknown contact format") }
        var state = ContactState(points: try reader.int64())
        for _ in 0..<(try reader.varint()) {
            let group = try reader.string()
            state.groups[group] = try reader.int64()
        }
        for _ in 0..<(try reader.varint()) { state.awarded.insert(try reader.string()) }
        for _ in 0..<(try reader.varint()) {
            let pattern = ByteString(try reader.string())
            var stats = VisitStats(hits: try reader.int64(), dwell: try reader.int64())
            if try reader.u8() == 1 { stats.lastAt = try reader.int64() }
            state.visits[pattern] = stats
        }
        func stringSet() throws(CorruptRecordError) -> Set<String> {
            var set: Set<String> = []
            for _ in 0..<(try reader.varint()) { set.insert(try reader.string()) }
            return set
        }
        state.fired = try stringSet()
        state.tags = try stringSet()
        state.segments = try stringSet()
        state.campaigns = try stringSet()
        if try reader.u8() == 1 { state.email = try reader.string() }
        if try reader.u8() == 1 { state.ownerEmail = try reader.string() }
        for _ in 0..<(try reader.varint()) {
            let action = try reader.string()
            var cap = CapState(count: try reader.int64())
            let times = try reader.varint()
            guard times <= 1024 else { throw reader.corrupt("more than 1024 award times of one cap") }
            for _ in 0..<times { cap.recent.append(try reader.int64()) }
            if try reader.u8() == 1 { cap.forgotten = try reader.int64() }
            state.caps[action] = cap
        }
        for _ in 0..<(try reader.varint()) {
            let trigger = try reader.string()
            let firings = try reader.int64()
            let armed = try reader.u8()
            guard armed <= 1 else { throw reader.corrupt("unknown armed flag \(armed)") }
            state.rearms[trigger] = RearmState(firings: firings, armed: armed == 1)
        }
        let fieldCount = try reader.varint()
        guard fieldCount <= UInt64(FieldLimits.perContact) else { throw reader.corrupt("\(fieldCount) fields") }
        for _ in 0..<fieldCount {
            let name = try reader.string(limit: 64)
            state.fields[name] = try reader.fieldValue(tag: try reader.u8())
        }
        for _ in 0..<(try reader.varint()) {
            let action = try reader.string()
            let group = try reader.u8() == 1 ? try reader.string() : nil
            state.fieldAwards[action] = FieldAward(group: group, delta: try reader.int64())
        }
        let known = try reader.u8()
        guard known <= 1 else { throw reader.corrupt("unknown known flag \(known)") }
        state.known = known == 1
        guard reader.isAtEnd else { throw reader.corrupt("trailing bytes") }
        return state
    }
}

/// The binary encoding of a session's open hit: `u8 format (1) · i64 LE at · LEB128 length + UTF-8 url`.
public enum OpenHitCodec {
    static let format: UInt8 = 1

    public static func encode(_ hit: OpenHit) -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(format)
        writer.int64(hit.at)
        writer.string(hit.url)
        return writer.bytes
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(CorruptRecordError) -> OpenHit {
        var reader = ByteReader(bytes, table: "sessions")
        guard try reader.u8() == format else { throw reader.corrupt("unknown session format") }
        let hit = OpenHit(at: try reader.int64(), url: try reader.string())
        guard reader.isAtEnd else { throw reader.corrupt("trailing bytes") }
        return hit
    }

    /// The table key of a session: the contact length-prefixed (ids may hold any byte), then the session.
    public static func key(_ key: SessionKey) -> [UInt8] {
        var writer = ByteWriter()
        writer.string(key.contact)
        writer.bytes.append(contentsOf: key.session.utf8)
        return writer.bytes
    }
}
