import Foundation
import TallyCore
import TallyStore
import Testing

/// The ingest path's packed records (issue 16) against the decoder's events and the log's codec: the same
/// decisions, the same errors, the same bytes in the log (SPEC §1, S6).
@Suite("Packed ingest records")
struct PackedEventsTests {
    static let received: Int64 = 1_700_000_000_123

    static let pieces = [
        "a", "Z", "0", "-", " ", "é", "😀", #"\""#, #"\\"#, #"\/"#, #"\n"#, #"\u00e9"#, #"\ud83d\ude00"#, "/", "?",
    ]
    static let damage: [UInt8] = Array(#"{}[]":,\u19-+.e "#.utf8) + [0x00, 0x0A, 0x80, 0xC3, 0xED, 0xFF]

    static func string(_ random: inout SplitMix64) -> String {
        "\"" + (0..<random.int(in: 1...6)).map { _ in random.pick(pieces) }.joined() + "\""
    }

    /// A line that is usually a valid event of any behaviour type, with every optional field now and then,
    /// unknown fields, nulls, and `item`/`url` where the type does not take them.
    static func line(_ random: inout SplitMix64) -> [UInt8] {
        let types = ["asset.download", "email.send", "email.open", "form.submit", "page.hit", "url.hit"]
        let type = random.chance(19, in: 20) ? random.pick(types) : random.pick(["page.view", "rebuild"])
        var fields: [(String, String)] = [("type", "\"\(type)\""), ("contact", string(&random))]
        if type == "url.hit" || random.chance(1, in: 8) {
            fields.append(
                ("url", "\"" + random.pick(["https://x.com/", "HTTP://a.b/c?d", "x.com", "mailto:a"]) + "\""))
        }
        if type != "url.hit" || random.chance(1, in: 8) { fields.append(("item", string(&random))) }
        if random.chance(1, in: 2) {
            fields.append(("at", random.chance(1, in: 2) ? "1767225600000" : "\"2026-01-01T00:00:00.5+01:00\""))
        }
        if random.chance(1, in: 2) { fields.append(("id", string(&random))) }
        if random.chance(1, in: 3) { fields.append(("session", random.chance(1, in: 4) ? "null" : string(&random))) }
        if random.chance(1, in: 3) {
            fields.append(("extra", random.pick(["[1,{\"a\":\"\\u0041\"}]", "null", "-0.5e3"])))
        }
        for index in stride(from: fields.count - 1, to: 0, by: -1) { fields.swapAt(index, random.int(in: 0...index)) }
        var bytes = Array(("{" + fields.map { "\"\($0)\":\($1)" }.joined(separator: ",") + "}").utf8)
        if random.chance(1, in: 3) {
            let position = random.int(in: 0...(bytes.count - 1))
            switch random.int(in: 0...2) {
            case 0: bytes.remove(at: position)
            case 1: bytes.insert(random.pick(damage), at: position)
            default: bytes[position] = random.pick(damage)
            }
        }
        return bytes
    }

    /// Decodes `body` both ways and checks they agree; returns whether it was accepted.
    @discardableResult
    static func compare(_ body: [UInt8], contentType: String, _ label: String) -> Bool {
        let decoder = EventDecoder(receivedAt: received)
        let decoded = body.withUnsafeBytes { raw in
            Result { () throws(EventDecodingError) -> [Event] in
                try decoder.decodeBody(raw, contentType: contentType, maxLineBytes: 4096)
            }
        }
        let packed = body.withUnsafeBytes { raw in
            Result { () throws(EventDecodingError) -> PackedEvents in
                try decoder.packBody(raw, contentType: contentType, maxLineBytes: 4096)
            }
        }
        switch (decoded, packed) {
        case (.success(let events), .success(let packed)):
            #expect(packed.count == events.count, "\(label)")
            for (event, entry) in zip(events, packed.entries) {
                #expect(Array(packed.bytes[entry.record]) == EventCodec.encode(event), "\(label): \(event)")
                #expect(entry.id.map { Array(packed.bytes[$0]) } == event.id.map { Array($0.utf8) }, "\(label)")
                #expect(entry.type == event.type, "\(label)")
            }
            return true
        case (.failure(let expected), .failure(let error)):
            #expect(error == expected, "\(label)")
            return false
        default:
            Issue.record("\(label): the decoder gives \(decoded), the packer \(packed)")
            return false
        }
    }

    @Test("SPEC §1: packed records are EventCodec's bytes of the decoder's events, and every rejection is the same")
    func packedRecordsEqualTheCodec() {
        var random = SplitMix64(seed: 0x9AC4_ED00)
        var accepted = 0
        var rejected = 0
        for caseNumber in 0..<4_000 {
            let bytes = Self.line(&random)
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            if Self.compare(bytes, contentType: "application/json", "case \(caseNumber) \(text)") {
                accepted += 1
            } else {
                rejected += 1
            }
        }
        #expect(accepted >= 1_000, "only \(accepted) accepted")
        #expect(rejected >= 500, "only \(rejected) rejected")
    }

    @Test("SPEC §1: NDJSON bodies pack line by line, blank lines skipped, the failing line named")
    func ndjsonBodies() {
        var random = SplitMix64(seed: 0x9AC4_ED01)
        for caseNumber in 0..<300 {
            let lines = (0..<random.int(in: 1...8)).map { _ in
                random.chance(1, in: 8) ? Array(" \r".utf8) : Self.line(&random)
            }
            var body: [UInt8] = []
            for line in lines { body += line + [0x0A] }
            Self.compare(body, contentType: "application/x-ndjson", "body \(caseNumber)")
        }
    }

    @Test("S6: packed requests append as events do: the same records, sequence numbers, duplicates and receipts")
    func appendMatchesEvents() throws {
        let body = Array(
            """
            {"type":"email.open","contact":"c1","item":"n","id":"a","at":5}
            {"type":"url.hit","contact":"c\\u00e9","url":"https://x.com/p","session":"s","at":6}
            {"type":"form.submit","contact":"c2","item":"f","id":"a","at":7}
            {"type":"asset.download","contact":"c3","item":"d","id":"b","at":8}

            """.utf8)
        let decoder = EventDecoder(receivedAt: Self.received)
        let events = try body.withUnsafeBytes { try decoder.decodeBody($0, contentType: "", maxLineBytes: 4096) }
        let packed = try body.withUnsafeBytes { try decoder.packBody($0, contentType: "", maxLineBytes: 4096) }
        var logs: [(EventLog, [AppendReceipt])] = []
        for request in [AppendRequest.events(events), .packed(packed)] {
            let directory = FileManager.default.temporaryDirectory.path + "/tally-packed-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let log = try EventLog(directory: directory, mapSize: 1 << 20)
            let first = try log.append([request])
            // Every id seen: its events are duplicates (S6); the event without an id is appended again.
            let retry = try log.append([request])
            logs.append((log, first + retry))
            #expect(try log.head() == 4)
        }
        #expect(logs[0].1 == logs[1].1)
        #expect(logs[1].1[0].accepted == 3)
        #expect(logs[1].1[0].duplicates == 1)
        #expect(logs[1].1[1].duplicates == 3)
        #expect(logs[1].1[1].accepted == 1)
        for seq in UInt64(1)...4 {
            #expect(try logs[0].0.event(at: seq) == logs[1].0.event(at: seq))
        }
    }
}
