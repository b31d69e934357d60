import Foundation
import TallyAPI
import TallyClient
import Testing

let browserToolsMissing = executable(["nginx"]) == nil || executable(["chromium", "chromium-browser"]) == nil

@Suite("A real browser through nginx and the tracking pixel")
struct BrowserTests {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    @Test(
        "U3 headless Chromium loads the demo page three times through nginx and the visitor's score rises",
        .disabled(
            if: browserToolsMissing, "nginx or chromium is not installed (scripts/install-deps --test installs them)")
    )
    func chromiumScoresThroughThePixel() throws {
        let daemon = try Daemon(
            rules: """
                actions:
                  - { id: demo-visits, type: url.hit, delta: 10, url: "http://127.0.0.1:*/", page_hits: 3 }
                  - { id: any-visit, type: url.hit, delta: 1, repeatable: true, url: "http://127.0.0.1:*" }
                """)
        try daemon.start()
        defer { daemon.stop() }

        // nginx with the committed site, pointed at this daemon's socket and the committed demo page.
        let port = freeLoopbackPort()
        let nginxDirectory = daemon.directory + "/nginx"
        try FileManager.default.createDirectory(atPath: nginxDirectory + "/logs", withIntermediateDirectories: true)
        var site = try String(
            contentsOf: Self.repositoryRoot.appendingPathComponent("config/nginx/tally.conf"), encoding: .utf8)
        site = site.replacingOccurrences(of: "unix:/run/tally/ingest.sock", with: "unix:\(daemon.ingestSocket)")
        site = site.replacingOccurrences(of: "listen 8080;", with: "listen 127.0.0.1:\(port);")
        site = site.replacingOccurrences(
            of: "root /srv/tally-demo;", with: "root \(Self.repositoryRoot.path)/config/nginx/demo;")
        try site.write(toFile: nginxDirectory + "/tally.conf", atomically: true, encoding: .utf8)
        let main = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(nginxDirectory)/nginx.pid;
            error_log \(nginxDirectory)/logs/error.log;
            events { worker_connections 64; }
            http {
                access_log \(nginxDirectory)/logs/access.log;
                client_body_temp_path \(nginxDirectory)/body;
                proxy_temp_path \(nginxDirectory)/proxy;
                fastcgi_temp_path \(nginxDirectory)/fastcgi;
                uwsgi_temp_path \(nginxDirectory)/uwsgi;
                scgi_temp_path \(nginxDirectory)/scgi;
                types { text/html html; image/gif gif; }
                include \(nginxDirectory)/tally.conf;
            }
            """
        try main.write(toFile: nginxDirectory + "/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: executable(["nginx"]) ?? "nginx")
        nginx.arguments = ["-c", nginxDirectory + "/nginx.conf", "-p", nginxDirectory]
        // One process (master_process off) and no inherited output: a stray nginx worker holding the test
        // runner's stdout open would keep `swift test` from ever finishing.
        nginx.standardOutput = FileHandle.nullDevice
        nginx.standardError = FileHandle.nullDevice
        try nginx.run()
        defer { killAndReap(nginx) }
        // Wait for nginx to listen.
        let deadline = Date().addingTimeInterval(10)
        var listening = false
        while Date() < deadline, !listening {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            listening = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            close(fd)
            if !listening { usleep(50_000) }
        }
        #expect(listening, "nginx did not start")

        var scores: [Int64] = []
        for visit in 1...3 {
            let chromium = Process()
            chromium.executableURL = URL(fileURLWithPath: executable(["chromium", "chromium-browser"]) ?? "chromium")
            chromium.arguments = [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(daemon.directory)/chromium-\(visit)", "--virtual-time-budget=5000",
                "--dump-dom", "http://127.0.0.1:\(port)/?contact=browser-visitor",
            ]
            // Output to a file, not a pipe: chromium's helper processes may hold a pipe open after it exits.
            let domPath = "\(daemon.directory)/dom-\(visit).html"
            FileManager.default.createFile(atPath: domPath, contents: nil)
            chromium.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: domPath))
            chromium.standardError = FileHandle.nullDevice
            try chromium.run()
            #expect(waitForExit(chromium, timeout: 60) != nil, "chromium did not finish within 60 s")
            let dom = (try? String(contentsOfFile: domPath, encoding: .utf8)) ?? ""
            #expect(dom.contains("Tally tracking demo"), "chromium did not render the page")
            let head = try daemon.health().logHead
            #expect(
                head == UInt64(visit) + 1, "the rules publication and the pixel hits in the log after visit \(visit)")
            scores.append(try daemon.contact("browser-visitor", after: head).document?.points ?? -1)
        }
        // one point per visit, ten more on the third (page_hits 3)
        #expect(scores == [1, 2, 13])
    }
}
