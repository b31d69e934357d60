public import TallyCore

/// An event the fold of a cluster partition hands to another partition (K4, I2), kept until the partition's holder
/// has published it there: the history of a contact merged into a contact of that partition, the merge itself, and
/// later events for the merged contact.
///
/// ```
/// relays: u64 BE seq · u32 BE index   → u16 BE partition · the event (``EventCodec``)
/// ```
///
/// `seq` is the sequence number of the event whose fold made the relay, `index` its place among that event's relays:
/// the keys are the order in which the holder publishes them. A `partition.relayed` event in the log, published by
/// the holder once the stream stored them, removes the relays through its position; everything in the table is thus
/// derived from the log, and a fresh fold of the same log leaves the same table.
public struct Relay: Sendable, Equatable {
    public var position: AuditPosition
    /// The partition the event goes to.
    public var partition: Int
    public var event: Event

    public init(position: AuditPosition, partition: Int, event: Event) {
        self.position = position
        self.partition = partition
        self.event = event
    }
}

extension ProjectionTransaction {
    // MARK: relays

    /// Records that `event` goes to `partition`, the `index`th relay of the event folded at `seq`.
    public func addRelay(_ relay: Relay) throws {
        let value =
            [UInt8(truncatingIfNeeded: relay.partition >> 8), UInt8(truncatingIfNeeded: relay.partition)]
            + EventCodec.encode(relay.event)
        try txn.put(store.relays, AuditCodec.key(relay.position), value)
    }

    /// The first `limit` relays waiting to be published, in order.
    public func relays(limit: Int) throws -> [Relay] {
        var relays: [Relay] = []
        try txn.scan(store.relays) { key, value in
            guard relays.count < limit else { return false }
            guard key.count == AuditCodec.keyWidth, value.count > 2 else {
                throw CorruptRecordError(table: "relays", message: "record of \(key.count)/\(value.count) bytes")
            }
            let position = try AuditCodec.position(key)
            let partition = Int(value[0]) << 8 | Int(value[1])
            let event = try EventCodec.decode(UnsafeRawBufferPointer(rebasing: value[2...]))
            relays.append(Relay(position: position, partition: partition, event: event))
            return true
        }
        return relays
    }

    /// How many relays wait to be published.
    public func pendingRelayCount() throws -> Int { try txn.count(store.relays) }

    /// Forgets the relays through `position`: published.
    public func removeRelays(through position: AuditPosition) throws {
        var keys: [[UInt8]] = []
        let last = AuditCodec.key(position)
        try txn.scan(store.relays) { key, _ in
            guard key.lexicographicallyPrecedes(last) || key.elementsEqual(last) else { return false }
            keys.append(Array(key))
            return true
        }
        for key in keys { _ = try txn.delete(store.relays, key) }
    }
}

extension Relay {
    /// The relay of `event`, the `position`'s of partition `origin`, to `partition`. Its id becomes one naming the
    /// relay, `relay:<origin>:<seq>:<index>`: the receiving partition's copy skips an id it holds (S6), so a relay
    /// published twice — by a holder that died before its record, after the duplicate window — is applied once. The
    /// event's own id is not kept: it was judged where the event arrived first, and a chain of merges that passes a
    /// partition twice would bring it back there, where it is known, and lose it.
    public static func make(_ event: Event, at position: AuditPosition, from origin: Int, to partition: Int) -> Relay {
        var event = event
        event.id = identifier(from: origin, at: position)
        return Relay(position: position, partition: partition, event: event)
    }

    /// The id of the relay at `position` of partition `origin`: its event's id and its message id in the stream.
    public static func identifier(from origin: Int, at position: AuditPosition) -> String {
        "relay:\(origin):\(position.seq):\(position.index)"
    }

    /// The `partition.relayed` event recording that the relays through `position` are published.
    public static func published(through position: AuditPosition, at time: Int64) -> Event {
        Event(
            type: .partitionRelayed, contact: "", at: time, item: String(position.index),
            value: Int64(bitPattern: position.seq))
    }

    /// The position a `partition.relayed` event names; nil for another event.
    public static func position(publishedBy event: Event) -> AuditPosition? {
        guard event.type == .partitionRelayed, let value = event.value, let index = event.item.flatMap({ UInt32($0) })
        else { return nil }
        return AuditPosition(seq: UInt64(bitPattern: value), index: index)
    }
}
