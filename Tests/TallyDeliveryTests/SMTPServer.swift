import Foundation

/// Whether Debian's python3-aiosmtpd is importable by /usr/bin/python3 (scripts/install-deps --test installs it).
let aiosmtpdAvailable: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", "import aiosmtpd"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do {
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus == 0
    } catch {
        return false
    }
}()

let aiosmtpdMissing = "python3-aiosmtpd is not installed (scripts/install-deps --test installs it)"

struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() -> Int {
    let listener = LoopbackListener(listening: false)
    return listener.port
}

/// A bound TCP socket on 127.0.0.1. When listening, the kernel completes connections into the backlog, but
/// nobody accepts them or says a word: a relay that never greets.
final class LoopbackListener {
    let descriptor: Int32
    let port: Int

    init(listening: Bool) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length)
                return getsockname(descriptor, pointer, &length)
            }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        if listening { listen(descriptor, 16) }
    }

    deinit { close(descriptor) }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func acceptsConnections(port: Int) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    return result == 0
}

/// A real SMTP server: aiosmtpd as a subprocess on a free loopback port, storing what it receives in a Maildir.
///
/// By default it runs `aiosmtpd.handlers.Mailbox`; `handler` is Python source of a module defining `Handler`
/// (used with `-c tally_test_handler.Handler`), for relays that refuse things.
final class SMTPServer {
    let directory: URL
    let port: Int
    private let process = Process()

    var maildir: URL { directory.appendingPathComponent("maildir") }

    init(handler: String? = nil, smtputf8: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tally-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.inspector.write(
            to: directory.appendingPathComponent("inspect_mail.py"), atomically: true, encoding: .utf8)
        port = freeLoopbackPort()

        var arguments = ["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)"]
        if smtputf8 { arguments.append("-u") }
        var environment = ProcessInfo.processInfo.environment
        if let handler {
            // A directory of its own on PYTHONPATH, so that no other file shadows a standard module.
            let modules = directory.appendingPathComponent("modules")
            try FileManager.default.createDirectory(at: modules, withIntermediateDirectories: true)
            try handler.write(
                to: modules.appendingPathComponent("tally_test_handler.py"), atomically: true, encoding: .utf8)
            environment["PYTHONPATH"] = modules.path
            arguments += ["-c", "tally_test_handler.Handler", maildir.path]
        } else {
            arguments += ["-c", "aiosmtpd.handlers.Mailbox", maildir.path]
        }
        let log = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let logHandle = try FileHandle(forWritingTo: log)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()

        let deadline = Date().addingTimeInterval(15)
        while !acceptsConnections(port: port) {
            guard process.isRunning, Date() < deadline else {
                stop()
                let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw TestFailure(description: "aiosmtpd did not start on port \(port): \(output)")
            }
            usleep(50_000)
        }
    }

    /// Kills the server. SIGKILL, not SIGTERM: a child spawned from a test thread inherits that thread's signal
    /// mask, in which SIGTERM may be blocked, and the Maildir needs no orderly shutdown.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The messages in the Maildir, parsed by Python's `email` package (an independent MIME and RFC 2047
    /// decoder), oldest first.
    func messages() throws -> [ReceivedMail] {
        let new = maildir.appendingPathComponent("new")
        guard FileManager.default.fileExists(atPath: new.path) else { return [] }
        let files = try FileManager.default.contentsOfDirectory(at: new, includingPropertiesForKeys: nil)
        return try files.sorted { $0.lastPathComponent < $1.lastPathComponent }.map(inspect)
    }

    private func inspect(_ file: URL) throws -> ReceivedMail {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [directory.appendingPathComponent("inspect_mail.py").path, file.path]
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure(description: "inspect_mail.py failed on \(file.path)")
        }
        var mail = try JSONDecoder().decode(ReceivedMail.self, from: data)
        mail.raw = try String(contentsOf: file, encoding: .utf8)
        return mail
    }

    /// Prints a message file as JSON: headers raw and decoded, the decoded body, the date, and any defects the
    /// parser found.
    private static let inspector = """
        import email, email.utils, json, sys
        from email import policy

        def text(value):
            # Raw 8-bit header bytes (SMTPUTF8) come back as surrogate escapes; turn them into UTF-8 again.
            return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")

        raw = open(sys.argv[1], "rb").read()
        decoded = email.message_from_bytes(raw, policy=policy.default)
        plain = email.message_from_bytes(raw, policy=policy.compat32)
        defects = [type(d).__name__ for d in decoded.defects]
        for name, value in decoded.items():
            defects += [name + ": " + type(d).__name__ for d in getattr(value, "defects", ())]
        print(json.dumps({
            "headers": [[name, text(value)] for name, value in decoded.items()],
            "rawHeaders": [[name, text(value)] for name, value in plain.items()],
            "toAddresses": [text(a.addr_spec) for a in decoded["To"].addresses] if decoded["To"] else [],
            "body": decoded.get_content(),
            "date": email.utils.parsedate_to_datetime(decoded["Date"]).timestamp() if decoded["Date"] else None,
            "defects": defects,
        }))
        """
}

/// One message as the server stored it.
struct ReceivedMail: Decodable {
    var headers: [[String]]
    var rawHeaders: [[String]]
    var toAddresses: [String]
    var body: String
    var date: Double?
    var defects: [String]
    var raw = ""

    enum CodingKeys: String, CodingKey {
        case headers, rawHeaders, toAddresses, body, date, defects
    }

    /// The decoded values of header `name`, in order.
    func values(_ name: String) -> [String] {
        headers.filter { $0.first?.lowercased() == name.lowercased() }.compactMap { $0.last }
    }

    /// The decoded value of header `name`, when there is exactly one.
    func header(_ name: String) -> String? {
        let found = values(name)
        return found.count == 1 ? found[0] : nil
    }

    /// The value of header `name` as it was on the wire (folding removed by the parser only where it unfolds).
    func rawHeader(_ name: String) -> String? {
        rawHeaders.first { $0.first?.lowercased() == name.lowercased() }?.last
    }
}
