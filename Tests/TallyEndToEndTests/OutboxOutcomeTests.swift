import Foundation
import TallyAPI
import TallyClient
import TallyCore
import Testing

/// A real HTTP server for webhooks that answers from a script: each line of the file `answers` in its directory
/// (`STATUS [RETRY-AFTER]`, or `sleep SECONDS` for a slow 200) answers one request, then 200. Every request is recorded as a JSON line.
final class ScriptedWebhookServer: PythonServer {

    static let script = #"""
        import json, os, sys, threading, time
        from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
        directory, port = sys.argv[1], int(sys.argv[2])
        lock = threading.Lock()
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, retry_after, delay = 200, None, 0
                with lock:
                    path = os.path.join(directory, "answers")
                    lines = open(path).read().split("\n") if os.path.exists(path) else []
                    lines = [line for line in lines if line.strip()]
                    if lines:
                        parts = lines[0].split(" ", 1)
                        if parts[0] == "sleep":
                            delay = float(parts[1])
                        else:
                            status = int(parts[0])
                            retry_after = parts[1] if len(parts) > 1 else None
                        open(path, "w").write("\n".join(lines[1:]))
                    record = {"key": self.headers.get("Idempotency-Key"), "status": status, "time": time.time()}
                    with open(os.path.join(directory, "requests.jsonl"), "a") as log:
                        log.write(json.dumps(record) + "\n")
                time.sleep(delay)
                self.send_response(status)
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
            def log_message(self, *args):
                pass
        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """#

    init(directory: String) throws {
        try super.init(directory: directory) { port in ["-c", ScriptedWebhookServer.script, directory, String(port)] }
    }

    /// One request as the receiver recorded it.
    struct Recorded: Decodable {
        var key: String
        var status: Int
        var time: Double
    }

    /// Every request received so far, in order.
    var requests: [Recorded] { readRecords(directory + "/requests.jsonl") }

    func requests(_ key: String) -> [Recorded] { requests.filter { $0.key == key } }
}

/// A webhook receiver that hangs: it accepts each connection and reads the request, records its
/// `Idempotency-Key` as a JSON line, and never answers nor closes the connection.
final class HangingWebhookServer: PythonServer {

    static let script = #"""
        import json, os, socket, sys, threading, time
        directory, port = sys.argv[1], int(sys.argv[2])
        lock = threading.Lock()
        held = []
        def serve(connection):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                data += chunk
            key = None
            for line in data.split(b"\r\n"):
                if line.lower().startswith(b"idempotency-key:"):
                    key = line.split(b":", 1)[1].strip().decode()
            with lock:
                held.append(connection)
                with open(os.path.join(directory, "requests.jsonl"), "a") as log:
                    log.write(json.dumps({"key": key, "time": time.time()}) + "\n")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=serve, args=(connection,), daemon=True).start()
        """#

    init(directory: String) throws {
        try super.init(directory: directory) { port in ["-c", HangingWebhookServer.script, directory, String(port)] }
    }

    /// One request as the receiver recorded it (it never answered).
    struct Recorded: Decodable {
        var key: String
        var time: Double
    }

    /// Every request received so far, in order.
    var requests: [Recorded] { readRecords(directory + "/requests.jsonl") }
}

/// A real SMTP server (aiosmtpd) that answers `DATA` from a script: each line of the file `answers` (a full
/// reply such as `550 5.1.1 no such user`) answers one message, then `250 OK`. Every message is recorded.
final class ScriptedMailServer: PythonServer {

    static let script = #"""
        import json, os, sys, threading, time
        from aiosmtpd.controller import Controller
        directory, port = sys.argv[1], int(sys.argv[2])
        lock = threading.Lock()
        class Handler:
            async def handle_DATA(self, server, session, envelope):
                answer = "250 OK"
                with lock:
                    path = os.path.join(directory, "answers")
                    lines = open(path).read().split("\n") if os.path.exists(path) else []
                    lines = [line for line in lines if line.strip()]
                    if lines:
                        answer = lines[0]
                        open(path, "w").write("\n".join(lines[1:]))
                    key = None
                    for line in envelope.content.decode("utf-8", "replace").splitlines():
                        if line.lower().startswith("x-tally-idempotency-key:"):
                            key = line.split(":", 1)[1].strip()
                    with open(os.path.join(directory, "messages.jsonl"), "a") as log:
                        log.write(json.dumps({"key": key, "answer": answer, "time": time.time()}) + "\n")
                return answer
        controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        controller.start()
        threading.Event().wait()
        """#

    init(directory: String) throws {
        try super.init(directory: directory) { port in ["-c", ScriptedMailServer.script, directory, String(port)] }
    }

    /// One message as the server recorded it.
    struct Recorded: Decodable {
        var key: String
        var answer: String
        var time: Double
    }

    /// Every message received so far, in order.
    var messages: [Recorded] { readRecords(directory + "/messages.jsonl") }

    func messages(_ key: String) -> [Recorded] { messages.filter { $0.key == key } }
}

/// Delivery outcomes are events in the log (T7), and permanent failures are parked at once (T7, issue 15).
@Suite("The outbox's delivery outcomes, end to end with real webhook and SMTP servers", .serialized)
struct OutboxOutcomeTests {
    static let rules = """
        actions:
          - { id: open, type: email.open, delta: 10, repeatable: true }
        triggers:
          - id: mql
            min_points: 20
            events:
              - { id: crm, type: integration.push, integration: crm }
              - { id: welcome, type: email.send, email: mql-welcome }
        """

    static func daemon(webhookPort: Int, mailPort: Int, outbox: String, mapSize: String = "64MiB") throws -> Daemon {
        try Daemon(
            rules: rules,
            extraConfig: """
                map_size: \(mapSize)
                integrations:
                  crm: { url: "http://127.0.0.1:\(webhookPort)/hook" }
                smtp: { host: 127.0.0.1, port: \(mailPort), from: "tally@example.com" }
                outbox: \(outbox)
                """)
    }

    /// One trigger at 20 points (two opens) pushing to the CRM.
    static let pushRules = """
        actions:
          - { id: open, type: email.open, delta: 10, repeatable: true }
        triggers:
          - id: mql
            min_points: 20
            events:
              - { id: crm, type: integration.push, integration: crm }
        """

    /// A daemon with ``pushRules`` pushing to `webhook`, with quick retries.
    static func pushingDaemon(_ webhook: ScriptedWebhookServer) throws -> Daemon {
        try Daemon(
            rules: pushRules,
            extraConfig: """
                integrations:
                  crm: { url: "http://127.0.0.1:\(webhook.port)/hook" }
                outbox: { attempts: 3, backoff: 100ms }
                """)
    }

    static func outbox(_ daemon: Daemon) throws -> [String: OutboxItem] {
        let entries = try daemon.admin().request("GET", "/v1/outbox?limit=100000").decode(OutboxList.self).entries
        return Dictionary(entries.map { ($0.key, $0) }) { a, _ in a }
    }

    static func waitForState(_ daemon: Daemon, _ keys: [String], _ state: String, timeout: TimeInterval = 30) throws {
        try AuditEndToEndTests.waitUntil(timeout: timeout) {
            let entries = try outbox(daemon)
            return keys.allSatisfy { entries[$0]?.state == state }
        }
    }

    @Test(
        "T7 deliver, stop, delete the projections, start: nothing is sent again, the outbox shows the deliveries, and verify passes with equality",
        .disabled(if: aiosmtpdMissing, "python3-aiosmtpd is not installed (scripts/install-deps --test installs it)")
    )
    func projectionsLost() throws {
        let scratch = "/tmp/tally-outcomes-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try ScriptedWebhookServer(directory: scratch + "/webhook")
        let mail = try ScriptedMailServer(directory: scratch + "/mail")
        let daemon = try Self.daemon(
            webhookPort: webhook.port, mailPort: mail.port, outbox: "{ attempts: 3, backoff: 1500ms }")
        try daemon.start()

        // c-1: its push fails once, and 100,000 events land in the log before it is delivered, so that a refold
        // from scratch has the entry pending for several batches before it folds the delivery (the hazard).
        try webhook.answer(["503"])
        try TriggerDeliveryTests.qualify(daemon, "c-1")
        for part in 0..<4 {
            let lines = (0..<25_000).map { JSON.event("page.hit", contact: "p-\($0 % 5000)", item: "page-\(part)") }
            #expect(try daemon.post(lines).status == 202)
        }
        try Self.waitForState(daemon, ["c-1/mql/crm", "c-1/mql/welcome"], "delivered")
        // c-2: its push is parked (a 404 is permanent), its email delivered.
        try webhook.answer(["404"])
        try TriggerDeliveryTests.qualify(daemon, "c-2")
        try Self.waitForState(daemon, ["c-2/mql/welcome"], "delivered")
        try Self.waitForState(daemon, ["c-2/mql/crm"], "failed")
        let verified = try daemon.verify()
        #expect(verified.passed, "\(verified.differences)")
        let before = try Self.outbox(daemon)
        let requestsBefore = webhook.requests.count
        let messagesBefore = mail.messages.count
        #expect(requestsBefore == 3)  // c-1: 503, 200; c-2: 404, and nothing more
        #expect(messagesBefore == 2)
        #expect(daemon.stop() == 0)

        // The projections are lost.
        for name in try FileManager.default.contentsOfDirectory(atPath: daemon.dataDirectory)
        where name.hasPrefix("projections") || name == "CURRENT" {
            try FileManager.default.removeItem(atPath: daemon.dataDirectory + "/" + name)
        }
        try daemon.start()
        defer { daemon.stop() }
        // The refold of 100,000 events can take a loaded machine longer than a read waits (read_after_timeout).
        let head = try daemon.health().logHead
        try AuditEndToEndTests.waitUntil(timeout: 120) { try daemon.health().projected >= head }
        sleep(2)  // a resend would happen within the backoff
        #expect(webhook.requests.count == requestsBefore, "\(webhook.requests)")
        #expect(mail.messages.count == messagesBefore, "\(mail.messages)")
        let after = try Self.outbox(daemon)
        for key in ["c-1/mql/crm", "c-1/mql/welcome", "c-2/mql/welcome"] {
            #expect(after[key]?.state == "delivered", "\(key): \(String(describing: after[key]))")
        }
        #expect(after["c-2/mql/crm"]?.state == "failed")
        #expect(after["c-1/mql/crm"]?.attempts == 2)
        for (key, entry) in before {
            #expect(after[key]?.deliveredAt == entry.deliveredAt, "\(key)")
            #expect(after[key]?.lastError == entry.lastError, "\(key)")
        }
        let cli = try daemon.run(["outbox"])
        #expect(cli.status == 0)
        #expect(cli.output.contains("delivered"), "\(cli.output)")
        let again = try daemon.verify()
        #expect(again.passed, "\(again.differences)")
    }

    @Test(
        "T7 permanent failures park at once (webhook 400, SMTP 550); 503 with Retry-After waits as told, SMTP 451 is retried; metrics count each outcome once while write transactions run their bodies twice",
        .disabled(if: aiosmtpdMissing, "python3-aiosmtpd is not installed (scripts/install-deps --test installs it)")
    )
    func permanentAndTransientFailures() throws {
        let scratch = "/tmp/tally-outcomes-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try ScriptedWebhookServer(directory: scratch + "/webhook")
        let mail = try ScriptedMailServer(directory: scratch + "/mail")
        // The smallest map, which grows under the load, and half of all write transactions made to run their
        // body again (`TALLY_FAULT=rerun`, as a full map does): an effect inside a write closure would count twice.
        let daemon = try Self.daemon(
            webhookPort: webhook.port, mailPort: mail.port, outbox: "{ attempts: 5, backoff: 100ms }",
            mapSize: "64KiB")
        try daemon.start(environment: ["TALLY_FAULT": "rerun:0.5"])
        defer { daemon.stop() }

        // Permanent: one attempt each, parked with the reason.
        try webhook.answer(["400"])
        try mail.answer(["550 5.1.1 no such user"])
        try TriggerDeliveryTests.qualify(daemon, "a-1")
        try Self.waitForState(daemon, ["a-1/mql/crm", "a-1/mql/welcome"], "failed")
        var entries = try Self.outbox(daemon)
        #expect(entries["a-1/mql/crm"]?.attempts == 1)
        #expect(entries["a-1/mql/crm"]?.lastError?.contains("400") == true)
        #expect(entries["a-1/mql/welcome"]?.attempts == 1)
        #expect(entries["a-1/mql/welcome"]?.lastError?.contains("550") == true)
        usleep(500_000)
        #expect(webhook.requests("a-1/mql/crm").count == 1)
        #expect(mail.messages("a-1/mql/welcome").count == 1)

        // Transient: a 503 asking for 2 s, and a 451; both delivered on the next attempt.
        try webhook.answer(["503 2"])
        try mail.answer(["451 4.3.0 try again later"])
        try TriggerDeliveryTests.qualify(daemon, "a-2")
        try Self.waitForState(daemon, ["a-2/mql/crm", "a-2/mql/welcome"], "delivered")
        entries = try Self.outbox(daemon)
        #expect(entries["a-2/mql/crm"]?.attempts == 2)
        #expect(entries["a-2/mql/welcome"]?.attempts == 2)
        let pushes = webhook.requests("a-2/mql/crm")
        #expect(pushes.map(\.status) == [503, 200])
        if pushes.count == 2 {
            let (first, second) = (pushes[0].time, pushes[1].time)
            #expect(second - first >= 2.0, "retried \(second - first) s after a Retry-After of 2 s")
        }
        #expect(mail.messages("a-2/mql/welcome").map(\.answer) == ["451 4.3.0 try again later", "250 OK"])

        // Many deliveries under a growing map: each outcome counted once, after its commit.
        let contacts = (0..<40).map { "m-\($0)" }
        for contact in contacts { try TriggerDeliveryTests.qualify(daemon, contact) }
        try Self.waitForState(daemon, contacts.flatMap { ["\($0)/mql/crm", "\($0)/mql/welcome"] }, "delivered")
        let metrics = try MetricsTests.scrape(daemon)
        #expect(metrics["tally_outbox_delivered_total{kind=integration.push}"] == 41)  // a-2 and the 40
        #expect(metrics["tally_outbox_delivered_total{kind=email.send}"] == 41)
        #expect(metrics["tally_outbox_parked_total{kind=integration.push}"] == 1)
        #expect(metrics["tally_outbox_parked_total{kind=email.send}"] == 1)
        #expect(metrics["tally_outbox_failed_attempts_total{kind=integration.push}"] == 2)  // the 400 and the 503
        #expect(metrics["tally_outbox_failed_attempts_total{kind=email.send}"] == 2)
        #expect(webhook.requests.count == 43)
        #expect(metrics["tally_events_accepted_total{type=email.open}"] == 84)  // two per contact
        #expect(metrics["tally_events_accepted_total{type=contact.update}"] == 42)
        let verified = try daemon.verify()
        #expect(verified.passed, "\(verified.differences)")
    }

    @Test(
        "T7 A4 a rebuild under rules that no longer fire a delivered push keeps its delivery: firing the key later sends nothing"
    )
    func rebuildKeepsDeliveries() throws {
        let scratch = "/tmp/tally-outcomes-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try ScriptedWebhookServer(directory: scratch + "/webhook")
        let daemon = try Self.pushingDaemon(webhook)
        try daemon.start()
        defer { daemon.stop() }
        try TriggerDeliveryTests.qualify(daemon, "r-1")
        try Self.waitForState(daemon, ["r-1/mql/crm"], "delivered")

        // Version 2 fires at 30 points: rebuilt under it, r-1 (20 points) has not fired.
        let file = daemon.directory + "/rules-v2.yaml"
        try Self.pushRules.replacingOccurrences(of: "min_points: 20", with: "min_points: 30").write(
            toFile: file, atomically: true, encoding: .utf8)
        #expect(try daemon.run(["rules", "publish", file]).status == 0)
        let rebuilt = try daemon.run(["rebuild"])
        #expect(rebuilt.status == 0, "\(rebuilt.error)")
        var entry = try Self.outbox(daemon)["r-1/mql/crm"]
        #expect(entry?.state == "delivered", "the delivery stays listed: \(String(describing: entry))")
        #expect(entry?.kind == "unknown")
        #expect(try daemon.admin().request("POST", "/v1/outbox/r-1%2Fmql%2Fcrm/retry").status == 409)
        var verified = try daemon.verify()
        #expect(verified.passed, "\(verified.differences)")

        // Reaching 30 fires the key under version 2: it was delivered, so nothing is sent.
        let reply = try daemon.post([JSON.event("email.open", contact: "r-1", item: "n3")])
        let seq = try #require(try reply.receipt.lastSeq)
        let (_, contact) = try daemon.contact("r-1", after: seq)
        #expect(contact?.triggers == ["mql/crm"])
        sleep(1)
        #expect(webhook.requests("r-1/mql/crm").count == 1)
        entry = try Self.outbox(daemon)["r-1/mql/crm"]
        #expect(entry?.state == "delivered")
        verified = try daemon.verify()
        #expect(verified.passed, "\(verified.differences)")
    }

    @Test(
        "T6 issue 16: a slow webhook holds up only its own entry; the email fired with it is delivered meanwhile",
        .disabled(if: aiosmtpdMissing, "python3-aiosmtpd is not installed (scripts/install-deps --test installs it)")
    )
    func slowReceiver() throws {
        let scratch = "/tmp/tally-outcomes-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try ScriptedWebhookServer(directory: scratch + "/webhook")
        let mail = try ScriptedMailServer(directory: scratch + "/mail")
        let daemon = try Self.daemon(
            webhookPort: webhook.port, mailPort: mail.port, outbox: "{ attempts: 3, backoff: 100ms }")
        try daemon.start()
        defer { daemon.stop() }
        try webhook.answer(["sleep 3"])
        try TriggerDeliveryTests.qualify(daemon, "s-1")
        try Self.waitForState(daemon, ["s-1/mql/welcome"], "delivered")
        #expect(try Self.outbox(daemon)["s-1/mql/crm"]?.state == "pending", "the webhook still waits")
        try Self.waitForState(daemon, ["s-1/mql/crm"], "delivered")
        let entries = try Self.outbox(daemon)
        let email = entries["s-1/mql/welcome"]?.deliveredAt.flatMap(Timestamp.parse)
        let push = entries["s-1/mql/crm"]?.deliveredAt.flatMap(Timestamp.parse)
        if let email, let push { #expect(push - email >= 2_000, "the email waited for the webhook") }
        #expect(webhook.requests("s-1/mql/crm").count == 1)
    }

    @Test(
        "T6 issue 16: a receiver that hangs does not delay another: its lane holds outbox.concurrency requests, and the other receiver's webhooks are delivered while those still hang"
    )
    func hangingReceiver() throws {
        let scratch = "/tmp/tally-outcomes-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let hanging = try HangingWebhookServer(directory: scratch + "/hanging")
        let webhook = try ScriptedWebhookServer(directory: scratch + "/webhook")
        let daemon = try Daemon(
            rules: """
                actions:
                  - { id: open, type: email.open, delta: 10, repeatable: true }
                triggers:
                  - id: stuck
                    min_points: 10
                    events:
                      - { id: push, type: integration.push, integration: hang }
                  - id: mql
                    min_points: 20
                    events:
                      - { id: crm, type: integration.push, integration: crm }
                """,
            extraConfig: """
                integrations:
                  hang: { url: "http://127.0.0.1:\(hanging.port)/hook" }
                  crm: { url: "http://127.0.0.1:\(webhook.port)/hook" }
                outbox: { attempts: 3, backoff: 100ms, concurrency: 2 }
                """)
        try daemon.start()
        defer { daemon.stop() }

        // Twenty pushes to the receiver that hangs, more than any fixed window of deliveries: its lane fills.
        let stuck = (1...20).map { String(format: "h-%02d", $0) }
        let reply = try daemon.post(stuck.map { JSON.event("email.open", contact: $0, item: "n1") })
        #expect(reply.status == 202)
        try AuditEndToEndTests.waitUntil { hanging.requests.count >= 2 }

        // Then pushes to the other receiver: delivered while the first still holds every request it was sent.
        let others = ["z-1", "z-2", "z-3"]
        for contact in others {
            let reply = try daemon.post([
                JSON.event("email.open", contact: contact, item: "n1"),
                JSON.event("email.open", contact: contact, item: "n2"),
            ])
            #expect(reply.status == 202)
        }
        try Self.waitForState(daemon, others.map { "\($0)/mql/crm" }, "delivered")
        let entries = try Self.outbox(daemon)
        let waiting = stuck.map { entries["\($0)/stuck/push"] }
        #expect(
            waiting.allSatisfy { $0?.state == "pending" && $0?.attempts == 0 },
            "no attempt of the hanging receiver has ended: \(waiting.map { "\($0?.state ?? "-") \($0?.attempts ?? -1)" })"
        )
        #expect(hanging.requests.count == 2, "outbox.concurrency bounds the requests a receiver holds")
        for contact in others { #expect(webhook.requests("\(contact)/mql/crm").count == 1) }
    }

    @Test(
        "T6 issue 16: a Retry-After pauses its receiver's lane: an entry fired meanwhile is first sent once the pause ends, and delivered at its first attempt"
    )
    func retryAfterPausesTheReceiver() throws {
        let scratch = "/tmp/tally-outcomes-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try ScriptedWebhookServer(directory: scratch + "/webhook")
        let daemon = try Self.pushingDaemon(webhook)
        try daemon.start()
        defer { daemon.stop() }
        try webhook.answer(["503 2"])
        try TriggerDeliveryTests.qualify(daemon, "p-1")
        // Once the 503 is in the outbox, the lane is paused (before the outcome was appended).
        try AuditEndToEndTests.waitUntil { try Self.outbox(daemon)["p-1/mql/crm"]?.attempts == 1 }
        try TriggerDeliveryTests.qualify(daemon, "p-2")
        try Self.waitForState(daemon, ["p-1/mql/crm", "p-2/mql/crm"], "delivered")
        let first = try #require(webhook.requests("p-1/mql/crm").first)
        let later = webhook.requests("p-2/mql/crm")
        #expect(later.map(\.status) == [200], "p-2 was sent once, after the pause")
        if let sent = later.first {
            #expect(sent.time - first.time >= 2.0, "p-2 sent \(sent.time - first.time) s after a Retry-After of 2 s")
        }
        #expect(try Self.outbox(daemon)["p-2/mql/crm"]?.attempts == 1)
    }

    @Test("T7 a restored backup knows the deliveries made before it was taken: only later ones are sent again")
    func restoredBackup() throws {
        let scratch = "/tmp/tally-outcomes-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let webhook = try ScriptedWebhookServer(directory: scratch + "/webhook")
        let daemon = try Self.pushingDaemon(webhook)
        try daemon.start()
        try TriggerDeliveryTests.qualify(daemon, "b-1")
        try Self.waitForState(daemon, ["b-1/mql/crm"], "delivered")
        // b-2 fires before the backup, and is delivered after it (its first attempt is told to wait 2 s).
        try webhook.answer(["503 2"])
        try TriggerDeliveryTests.qualify(daemon, "b-2")
        try AuditEndToEndTests.waitUntil { webhook.requests("b-2/mql/crm").count == 1 }
        let backup = daemon.directory + "/backup"
        #expect(try daemon.run(["backup", backup]).status == 0)
        try Self.waitForState(daemon, ["b-2/mql/crm"], "delivered")
        #expect(daemon.stop() == 0)

        // Restore: the backup replaces the data directory; its projections are lost too, for good measure.
        try FileManager.default.removeItem(atPath: daemon.dataDirectory)
        try FileManager.default.copyItem(atPath: backup, toPath: daemon.dataDirectory)
        for name in try FileManager.default.contentsOfDirectory(atPath: daemon.dataDirectory)
        where name.hasPrefix("projections") || name == "CURRENT" {
            try FileManager.default.removeItem(atPath: daemon.dataDirectory + "/" + name)
        }
        try daemon.start()
        defer { daemon.stop() }
        try Self.waitForState(daemon, ["b-1/mql/crm", "b-2/mql/crm"], "delivered")
        usleep(500_000)
        #expect(webhook.requests("b-1/mql/crm").count == 1, "delivered before the backup: never again")
        #expect(webhook.requests("b-2/mql/crm").count == 3, "delivered after the backup: at least once, again")
        let verified = try daemon.verify()
        #expect(verified.passed, "\(verified.differences)")
    }
}

/// The JSON lines a test server recorded, each decoded as `T`; a line that is not one fails the test.
func readRecords<T: Decodable>(_ path: String) -> [T] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { line in
        do {
            return try JSONDecoder().decode(T.self, from: Data(line.utf8))
        } catch {
            Issue.record("\(path): not a \(T.self): \(error): \(line)")
            return nil
        }
    }
}

extension PythonServer {
    /// For the scripted servers: the answers to their next requests, in order (the file `answers` the script reads).
    func answer(_ lines: [String]) throws {
        try lines.joined(separator: "\n").write(toFile: directory + "/answers", atomically: true, encoding: .utf8)
    }
}
