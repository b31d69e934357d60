import Foundation
import TallyCore
import TallyStore
import Testing

@testable import TallyEngine

/// What the cluster tests feed a cluster and a single node alike: the example rules' publication, then behaviour
/// events over a few hundred contacts; and the single node's fold of them.
enum ClusterFixtures {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The publication of `config/rules.yaml`, then `count` events over `contacts` contacts (2026-03-15 on, inside
    /// the example rules' campaign), form submits with ids.
    static func events(count: Int, contacts: Int, seed: UInt64) throws -> [Event] {
        let rules = try String(contentsOf: repository.appendingPathComponent("config/rules.yaml"), encoding: .utf8)
        var random = SplitMix64(seed: seed)
        let start: Int64 = 1_773_532_800_000
        var events = [Event(type: .rulesPublished, contact: "", at: start, reason: "test", text: rules)]
        for n in 0..<count {
            let contact = "c-\(random.int(in: 0...(contacts - 1)))"
            let at = start + Int64(n) * 1_000
            switch random.int(in: 0...4) {
            case 0: events.append(Event(type: .assetDownload, contact: contact, at: at, item: "pricing-whitepaper"))
            case 1: events.append(Event(type: .emailOpen, contact: contact, at: at, item: "newsletter-\(n % 3)"))
            case 2:
                events.append(Event(type: .formSubmit, contact: contact, at: at, id: "f-\(n)", item: "demo-request"))
            case 3:
                events.append(
                    Event(
                        type: .urlHit, contact: contact, at: at, url: "https://www.example.com/pricing",
                        session: "s-\(contact)"))
            default: events.append(Event(type: .pageHit, contact: contact, at: at, item: "landing-\(n % 8)"))
            }
        }
        return events
    }

    /// The contacts' states a single node folds from `events`, as one log in `path`: after the last `rebuild` event,
    /// if any, as the rebuild it asks for leaves them (the log before it folded under its version, then the rest).
    static func singleNodeFold(_ events: [Event], in path: String) throws -> [(String, ContactState)] {
        try FileManager.default.createDirectory(atPath: path + "/log", withIntermediateDirectories: true)
        let log = try EventLog(directory: path + "/log", mapSize: 1 << 30)
        let first = try #require(try log.append([events]).first?.firstSeq)
        let store = try ProjectionStore(directory: path + "/projections", mapSize: 1 << 30)
        let folder =
            if let rebuild = events.lastIndex(where: { $0.type == .rebuild }) {
                try ProjectionFolder(
                    log: log, emptyStore: store, sessionTimeout: 30 * 60_000, version: events[rebuild].value ?? 0,
                    until: first + UInt64(rebuild))
            } else {
                try ProjectionFolder(log: log, store: store, sessionTimeout: 30 * 60_000)
            }
        while try folder.step() {}
        return try store.allContacts()
    }
}

extension ClusterFixtures {
    /// What a node delivers with in the tests: the example templates, the `crm` webhook to `port` on this machine,
    /// an SMTP relay where nothing listens (emails fail), one attempt each.
    static func deliveryConfiguration(webhookPort port: Int) throws -> Configuration {
        try Configuration.parse(
            """
            templates: \(repository.path)/config/templates
            integrations:
              crm: { url: "http://127.0.0.1:\(port)/hook" }
            smtp: { host: 127.0.0.1, port: 9 }
            outbox: { attempts: 1 }
            """, file: "test")
    }
}

/// Waits up to 60 s for `condition`; records an issue and throws when it does not hold by then.
func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: .milliseconds(200))
    }
    Issue.record("not within 60 s: \(what)")
    throw CancellationError()
}
