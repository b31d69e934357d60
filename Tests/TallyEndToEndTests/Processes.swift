import Foundation
import TallyClient

/// Finds an executable on the usual paths.
func executable(_ names: [String]) -> String? {
    for directory in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"] {
        for name in names where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
    }
    return nil
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length)
            return getsockname(fd, pointer, &length)
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Waits for a process to exit and returns its exit status; kills it after `timeout` seconds and returns nil.
///
/// Reaps with `waitpid` itself as well as asking Foundation, which under load was seen to miss a child's exit.
@discardableResult
func waitForExit(_ process: Process, timeout: TimeInterval) -> Int32? {
    let pid = process.processIdentifier
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if !process.isRunning { return process.terminationStatus }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        }
        usleep(20_000)
    }
    killAndReap(process)
    return nil
}

/// SIGKILL, then reap. Never `waitUntilExit()` here: under load Foundation was seen not to notice a killed
/// child (a zombie), and a child started from a test thread may have SIGTERM blocked, so `terminate()` is no
/// way to end it either.
func killAndReap(_ process: Process) {
    let pid = process.processIdentifier
    guard pid > 0 else { return }
    kill(pid, SIGKILL)
    var status: Int32 = 0
    _ = waitpid(pid, &status, 0)  // ECHILD when Foundation reaped it first: fine
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
func waitForPort(_ port: Int, timeout: TimeInterval = 15) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        close(fd)
        if connected { return }
        usleep(50_000)
    }
    throw ClientError("nothing listens on 127.0.0.1:\(port)")
}

/// A test server run by `/usr/bin/python3` with `arguments(port)` on a free loopback port, owning `directory`
/// (created first); started and waited for when built, killed when released. The servers of the tests (webhook
/// receivers, SMTP servers) are its subclasses.
class PythonServer {
    let directory: String
    let port: Int
    private let process = Process()

    init(directory: String, arguments: (_ port: Int) -> [String]) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = freeLoopbackPort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments(port)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try waitForPort(port)
    }

    deinit { killAndReap(process) }
}
