import Foundation
import TallyAPI
import TallyClient
import Testing

/// The Python of the venv `scripts/install-deps --test` fills with the real Segment clients from PyPI.
let segmentClientsPython = Nginx.repositoryRoot.appendingPathComponent(".build/segment-clients/bin/python").path
let segmentClientsMissing =
    executable(["nginx"]) == nil || !FileManager.default.isExecutableFile(atPath: segmentClientsPython)

/// Sends page, track, identify and alias with each client, as a site's backend would, and exits non-zero when
/// a client reports an error.
private let clientScript = """
    import sys
    from segment.analytics.client import Client as SegmentClient
    from rudderstack.analytics.client import Client as RudderClient

    host, key = sys.argv[1], sys.argv[2]
    errors = []

    def on_error(error, batch):
        errors.append(repr(error))

    for prefix, Client in (("seg", SegmentClient), ("rud", RudderClient)):
        client = Client(key, host=host, on_error=on_error, max_retries=1)
        anonymous, user = prefix + "-anon", prefix + "-user"
        client.page(anonymous_id=anonymous, name="Pricing", properties={"url": "https://x.com/pricing"})
        client.track(anonymous_id=anonymous, event="Whitepaper Downloaded", properties={"item": "guide"})
        client.track(anonymous_id=anonymous, event="Video Played", properties={"item": "intro"})
        client.identify(user_id=user, anonymous_id=anonymous, traits={"email": prefix + "@example.com"})
        client.alias(previous_id=prefix + "-old", user_id=user)
        client.flush()
        client.join()

    if errors:
        print("\\n".join(errors))
        sys.exit(1)
    """

@Suite("I6 the real Segment clients through nginx")
struct SegmentClientTests {
    @Test(
        "I6 segment-analytics-python and rudder-sdk-python (gzip) send page, track, identify and alias through nginx",
        .disabled(
            if: segmentClientsMissing,
            "nginx or the Python clients are missing (scripts/install-deps --test installs them)"))
    func realClientsThroughNginx() throws {
        let daemon = try Daemon(rules: endToEndRules, extraConfig: segmentConfig + "\n  write_key: wk_python")
        try daemon.start()
        defer { daemon.stop() }
        let nginx = try Nginx(daemon: daemon)

        let scriptPath = daemon.directory + "/clients.py"
        try clientScript.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let outputPath = daemon.directory + "/clients.out"
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        let python = Process()
        python.executableURL = URL(fileURLWithPath: segmentClientsPython)
        python.arguments = [scriptPath, "http://127.0.0.1:\(nginx.port)/t", "wk_python"]
        python.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        python.standardError = python.standardOutput
        try python.run()
        let status = waitForExit(python, timeout: 60)
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        #expect(status == 0, "the clients reported errors: \(output)\n\(nginx.accessLog)")

        // Both clients posted batches through nginx; rudder-sdk-python gzipped its own.
        let requests = nginx.accessLog.split(separator: "\n").filter { $0.hasPrefix("POST /t/v1/batch ") }
        #expect(!requests.isEmpty && requests.allSatisfy { $0.contains(" 200 ") }, "\(nginx.accessLog)")
        #expect(requests.contains { $0.contains(#""gzip""#) }, "\(nginx.accessLog)")
        #expect(requests.contains { $0.contains(#""-""#) }, "\(nginx.accessLog)")

        let head = try daemon.health().logHead
        for prefix in ["seg", "rud"] {
            // The pricing page (5) and the mapped download (10), under the anonymous id; the unmapped
            // "Video Played" is acknowledged and not stored.
            #expect(try daemon.contact("\(prefix)-anon", after: head).document?.points == 15, "\(prefix)")
        }
        daemon.stop()
        let merges = try loggedMerges(daemon)
        #expect(merges.count == 4)
        for prefix in ["seg", "rud"] {
            #expect(merges.contains { $0.from == "\(prefix)-anon" && $0.into == "\(prefix)-user" && $0.viaIngest })
            #expect(merges.contains { $0.from == "\(prefix)-old" && $0.into == "\(prefix)-user" && $0.viaIngest })
            // Each merge carries the client's messageId as its id (S6).
        }
        #expect(merges.allSatisfy { $0.id != nil })
        #expect(head == 1 + 2 * (2 + 2), "the rules, then per client a page, a download and two merges")
    }
}
