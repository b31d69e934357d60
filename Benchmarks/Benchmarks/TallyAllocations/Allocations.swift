// Allocations per operation on Tally's hot paths, counted (mallocCountTotal), not timed: decoding one NDJSON line
// of each common type, encoding and decoding one log record, and folding one event of each type into the state of
// a contact that already has one (the steady state of a live projection). scripts/alloc-check runs them against
// Benchmarks/Thresholds and fails when a count rises; Docs/performance.md lists the counts.
import Benchmark
import Foundation
import TallyCore
import TallyStore

// Names hold no spaces or slashes: package-benchmark 1.38.1 writes a threshold file with them replaced by `_` but
// looks it up by the name as it is, so such a benchmark's threshold would never be found.
let benchmarks: @Sendable () -> Void = {
    // One sample is one operation, so the p90 of mallocCountTotal is the count per operation (counts do not vary
    // between runs of deterministic code: any rise above the recorded threshold fails the check).
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .one,
        maxDuration: .seconds(1),
        maxIterations: 1_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )

    for sample in NDJSONSample.all {
        let decoder = EventDecoder(receivedAt: Fixture.start)
        let line = Array(sample.line.utf8)
        Benchmark("decode-ndjson-line-\(sample.type)") { benchmark in
            for _ in benchmark.scaledIterations {
                line.withUnsafeBytes { bytes in blackHole(try? decoder.decode(bytes)) }
            }
        }
    }

    // The ingest path: a request's lines packed into log records (EventDecoder.packBody), the same 100 lines of each
    // common type in one body. The records and their entries are reserved up front: two allocations per request,
    // none per line.
    for sample in NDJSONSample.all {
        let decoder = EventDecoder(receivedAt: Fixture.start)
        let body = Array(String(repeating: sample.line + "\n", count: 100).utf8)
        Benchmark("pack-ndjson-100-lines-\(sample.type)") { benchmark in
            for _ in benchmark.scaledIterations {
                body.withUnsafeBytes { bytes in
                    blackHole(try? decoder.packBody(bytes, contentType: "application/x-ndjson", maxLineBytes: 4096))
                }
            }
        }
    }

    // The append path encodes every event of a batch into one reused buffer; the fold decodes each record.
    let record = Fixture.event(.urlHit, at: Fixture.start)
    var buffer: [UInt8] = []
    buffer.reserveCapacity(256)
    EventCodec.encode(record, into: &buffer)
    Benchmark("encode-log-record-url.hit") { benchmark in
        for _ in benchmark.scaledIterations {
            EventCodec.encode(record, into: &buffer)
            blackHole(buffer.count)
        }
    }
    let encoded = EventCodec.encode(record)
    Benchmark("decode-log-record-url.hit") { benchmark in
        for _ in benchmark.scaledIterations {
            encoded.withUnsafeBytes { bytes in blackHole(try? EventCodec.decode(bytes)) }
        }
    }

    for type in Fixture.foldedTypes {
        let fixture = FoldFixture(type)
        Benchmark("fold-\(type)-known-contact") { benchmark in
            for _ in benchmark.scaledIterations { fixture.foldNext() }
        }
    }
}

/// One NDJSON line per common type, as tracking clients send them: an id, an RFC 3339 time, and the fields
/// their type's point actions match on.
struct NDJSONSample {
    let type: String
    let line: String

    static let all: [NDJSONSample] = [
        .init(
            type: "url.hit",
            line: #"{"type":"url.hit","contact":"c-4711","url":"https://www.example.com/pricing?plan=team","#
                + #""session":"s-81f2c3","id":"5f0c7d0e-8a4b-4c1e-9b7a-2f1d3c4b5a69","at":"2026-04-01T10:00:00.000Z"}"#
        ),
        .init(
            type: "email.open",
            line: #"{"type":"email.open","contact":"c-4711","item":"spring-2026","#
                + #""id":"0b7e1a8c-3d2f-4e5a-8b9c-1d2e3f4a5b6c","at":"2026-04-01T10:00:00.000Z"}"#
        ),
        .init(
            type: "form.submit",
            line: #"{"type":"form.submit","contact":"c-4711","item":"demo-request","#
                + #""id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","at":"2026-04-01T10:00:00.000Z"}"#
        ),
        .init(
            type: "asset.download",
            line: #"{"type":"asset.download","contact":"c-4711","item":"pricing-whitepaper","#
                + #""id":"3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f","at":"2026-04-01T10:00:00.000Z"}"#
        ),
        .init(
            type: "page.hit",
            line: #"{"type":"page.hit","contact":"c-4711","item":"spring-landing","#
                + #""id":"7e8f9a0b-1c2d-4e3f-9a4b-5c6d7e8f9a0b","at":"2026-04-01T10:00:00.000Z"}"#
        ),
        .init(
            type: "email.send",
            line: #"{"type":"email.send","contact":"c-4711","item":"newsletter-april","#
                + #""id":"1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b","at":"2026-04-01T10:00:00.000Z"}"#
        ),
    ]
}

/// The rules and events the fold benchmarks use: `config/rules.yaml` (every behaviour type has an action there),
/// and one contact.
enum Fixture {
    /// 2026-04-01T00:00:00Z: inside the example rules' spring campaign window.
    static let start: Int64 = 1_775_001_600_000
    static let day: Int64 = 86_400_000
    static let contact = "c-4711"
    static let foldedTypes: [EventType] = [
        .urlHit, .emailOpen, .emailSend, .formSubmit, .assetDownload, .pageHit, .contactUpdate,
    ]

    static let scorer: Scorer = {
        // Benchmarks/Benchmarks/TallyAllocations/Allocations.swift → the repository's root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("config/rules.yaml").path
        do {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return Scorer(rules: try RulesParser.parse(text, file: path), version: 1)
        } catch {
            fatalError("cannot read the rules \(path): \(error)")
        }
    }()

    /// An event of `type` for the contact, as the log holds it (what the projector folds).
    static func event(_ type: EventType, at: Int64) -> Event {
        switch type {
        case .urlHit:
            Event(
                type: .urlHit, contact: contact, at: at, id: "5f0c7d0e-8a4b-4c1e-9b7a-2f1d3c4b5a69",
                url: "https://www.example.com/pricing?plan=team", session: "s-81f2c3")
        case .emailOpen:
            // A newsletter, not the spring campaign: that action's window (March–May 2026) would make the count
            // depend on how many steps a run takes.
            Event(type: .emailOpen, contact: contact, at: at, id: "0b7e1a8c-3d2f-4e5a", item: "newsletter-april")
        case .emailSend:
            Event(type: .emailSend, contact: contact, at: at, id: "1f2e3d4c-5b6a-4798", item: "newsletter-april")
        case .formSubmit:
            Event(type: .formSubmit, contact: contact, at: at, id: "9a8b7c6d-5e4f-4a3b", item: "demo-request")
        case .assetDownload:
            Event(
                type: .assetDownload, contact: contact, at: at, id: "3c4d5e6f-7a8b-4c9d", item: "pricing-whitepaper")
        case .pageHit:
            Event(type: .pageHit, contact: contact, at: at, id: "7e8f9a0b-1c2d-4e3f", item: "spring-landing")
        case .contactUpdate:
            Event(
                type: .contactUpdate, contact: contact, at: at, email: "ada@example.com",
                fields: [FieldUpdate(name: "employees", value: .number(800))])
        default:
            Event(type: type, contact: contact, at: at)
        }
    }
}

/// A projection holding one known contact with a history of every type (scores, caps, a visited pattern, triggers
/// fired, fields), into which each step folds one more event of one type, a day after the previous one, exactly as
/// `ProjectionFolder` folds a batch (`Projection.apply` with the scorer in force).
final class FoldFixture {
    private var projection = Projection()
    private var event: Event
    private let scorer = Fixture.scorer

    init(_ type: EventType) {
        var at = Fixture.start
        for _ in 0..<3 {
            for earlier in Fixture.foldedTypes {
                projection.apply(Fixture.event(earlier, at: at), scorer: scorer)
                at += 60_000
            }
            at += Fixture.day
        }
        event = Fixture.event(type, at: at)
    }

    /// Folds the next event: a day later each time, so that windows (caps, sessions) roll the way a contact's
    /// days do, and the state's shape stays the same from one step to the next.
    func foldNext() {
        event.at &+= Fixture.day
        blackHole(projection.apply(event, scorer: scorer))
    }
}
