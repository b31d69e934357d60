import Foundation

/// nginx running the committed site (`config/nginx/tally.conf`) on a free loopback port in front of a daemon's
/// ingest socket (`/t/` → the socket), in the daemon's directory; killed when released. The access log records
/// each request's `Content-Encoding` too.
final class Nginx {
    let port: Int
    let directory: String
    private let process = Process()

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    init(daemon: Daemon) throws {
        port = freeLoopbackPort()
        directory = daemon.directory + "/nginx"
        try FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        var site = try String(
            contentsOf: Self.repositoryRoot.appendingPathComponent("config/nginx/tally.conf"), encoding: .utf8)
        site = site.replacingOccurrences(of: "unix:/run/tally/ingest.sock", with: "unix:\(daemon.ingestSocket)")
        site = site.replacingOccurrences(of: "listen 8080;", with: "listen 127.0.0.1:\(port);")
        site = site.replacingOccurrences(
            of: "root /srv/tally-demo;", with: "root \(Self.repositoryRoot.path)/config/nginx/demo;")
        try site.write(toFile: directory + "/tally.conf", atomically: true, encoding: .utf8)
        let main = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(directory)/logs/error.log;
            events { worker_connections 64; }
            http {
                log_format tally '$request $status "$http_content_encoding" "$http_user_agent"';
                access_log \(directory)/logs/access.log tally;
                client_body_temp_path \(directory)/body;
                proxy_temp_path \(directory)/proxy;
                fastcgi_temp_path \(directory)/fastcgi;
                uwsgi_temp_path \(directory)/uwsgi;
                scgi_temp_path \(directory)/scgi;
                types { text/html html; image/gif gif; }
                include \(directory)/tally.conf;
            }
            """
        try main.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: executable(["nginx"]) ?? "nginx")
        process.arguments = ["-c", directory + "/nginx.conf", "-p", directory]
        // One process (master_process off) and no inherited output: a stray nginx worker holding the test
        // runner's stdout open would keep `swift test` from ever finishing.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try waitForPort(port)
    }

    deinit { killAndReap(process) }

    /// The access log so far: one line per request, `METHOD PATH PROTOCOL STATUS "ENCODING" "USER-AGENT"`.
    var accessLog: String {
        (try? String(contentsOfFile: directory + "/logs/access.log", encoding: .utf8)) ?? ""
    }
}
