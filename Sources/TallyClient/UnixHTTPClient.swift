import Glibc

/// A failure talking to the daemon: what failed, in words, and the system error when a call failed.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    /// Which step failed.
    public enum Kind: Sendable, Equatable {
        case connect, send, receive, closedBeforeResponse, closedMidResponse, malformedResponse, file, other
    }

    public var kind: Kind
    public var message: String
    /// The `errno` of the failing system call, captured at the call.
    public var code: Int32?

    public init(_ message: String, kind: Kind = .other, code: Int32? = nil) {
        self.message = message
        self.kind = kind
        self.code = code
    }

    /// The connection was found closed before any byte of the response arrived (a kept-alive connection the
    /// daemon closed while idle): the request may be sent again on a fresh connection.
    public var isConnectionLost: Bool { kind == .send || kind == .closedBeforeResponse }

    public var description: String {
        guard let code else { return message }
        return "\(message): \(String(cString: strerror(code)))"
    }
}

/// Connecting to a Unix stream socket.
public enum UnixSocket {
    /// A connected socket descriptor (the caller closes it), or an error saying why not.
    public static func connect(to path: String) throws(ClientError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket", kind: .connect, code: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw ClientError("socket path too long: \(path)", kind: .connect)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw ClientError("cannot connect to \(path) (is `tally serve` running?)", kind: .connect, code: code)
        }
        return fd
    }
}

/// An HTTP response: status, headers (names lowercased) and body.
public struct HTTPReply: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A small blocking HTTP/1.1 client over a Unix stream socket, with keep-alive.
///
/// What the CLI, the tests and the load generators use to talk to the daemon: no event loop, no TLS, one
/// connection, reconnecting when the server closed it. Not for concurrent use; give each thread its own.
public final class UnixHTTPClient {
    public let socketPath: String
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private let timeoutSeconds: Int

    public init(socketPath: String, timeoutSeconds: Int = 60) {
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
    }

    deinit { disconnect() }

    public func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        buffer.removeAll()
    }

    private func connectIfNeeded() throws(ClientError) {
        guard fd < 0 else { return }
        let socketFD = try UnixSocket.connect(to: socketPath)
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(socketFD, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        fd = socketFD
    }

    /// Sends one request and reads its response. Retries once on a fresh connection when a kept-alive
    /// connection turns out to be closed before any byte of the response arrived.
    public func request(
        _ method: String, _ path: String, body: [UInt8] = [], contentType: String? = nil,
        headers: [String: String] = [:]
    ) throws(ClientError) -> HTTPReply {
        let reused = fd >= 0
        do {
            return try exchange(method, path, body, contentType, headers)
        } catch let error where reused && error.isConnectionLost {
            disconnect()
            return try exchange(method, path, body, contentType, headers)
        }
    }

    /// Sends a file as the request body, read and sent in 64 KiB chunks (an import of any size), and reads the
    /// response. `progress` is called with the bytes sent so far.
    public func request(
        _ method: String, _ path: String, bodyFile: String, contentType: String,
        progress: (_ sent: Int, _ total: Int) -> Void = { _, _ in }
    ) throws(ClientError) -> HTTPReply {
        let file = open(bodyFile, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw ClientError("cannot open \(bodyFile)", kind: .file, code: errno) }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0 else { throw ClientError("cannot stat \(bodyFile)", kind: .file, code: errno) }
        let total = Int(info.st_size)
        try connectIfNeeded()
        let head =
            "\(method) \(path) HTTP/1.1\r\nHost: tally\r\nContent-Length: \(total)\r\nContent-Type: \(contentType)\r\n\r\n"
        do throws(ClientError) {
            try send(Array(head.utf8))
            var chunk = [UInt8](repeating: 0, count: 65_536)
            var sent = 0
            while sent < total {
                let count = chunk.withUnsafeMutableBytes { read(file, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count >= 0 else { throw ClientError("cannot read \(bodyFile)", kind: .file, code: errno) }
                guard count > 0 else { throw ClientError("\(bodyFile) ended early", kind: .file) }
                try send(Array(chunk[0..<count]))
                sent += count
                progress(sent, total)
            }
            return try readResponse()
        } catch {
            disconnect()
            throw error
        }
    }

    private func exchange(
        _ method: String, _ path: String, _ body: [UInt8], _ contentType: String?, _ headers: [String: String]
    ) throws(ClientError) -> HTTPReply {
        try connectIfNeeded()
        var head = "\(method) \(path) HTTP/1.1\r\nHost: tally\r\nContent-Length: \(body.count)\r\n"
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        do throws(ClientError) {
            try send(Array(head.utf8))
            if !body.isEmpty { try send(body) }
            return try readResponse()
        } catch {
            disconnect()
            throw error
        }
    }

    private func send(_ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                throw ClientError("connection closed before the request was sent", kind: .send, code: code)
            }
            offset += written
        }
    }

    private func fill() throws(ClientError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw ClientError("receive failed", kind: .receive, code: code)
            }
            if count == 0 { return false }
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
    }

    private func readResponse() throws(ClientError) -> HTTPReply {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while true {
            if buffer.count >= 4 {
                headerEnd = (0...(buffer.count - 4)).first { buffer[$0..<($0 + 4)].elementsEqual(separator) }
            }
            if headerEnd != nil { break }
            guard try fill() else {
                throw buffer.isEmpty
                    ? ClientError("connection closed before the response", kind: .closedBeforeResponse)
                    : ClientError("connection closed mid-response", kind: .closedMidResponse)
            }
        }
        guard let headerEnd else { throw ClientError("malformed response", kind: .malformedResponse) }
        let lines = String(decoding: buffer[0..<headerEnd], as: UTF8.self).split(separator: "\r\n")
        guard let statusLine = lines.first, statusLine.split(separator: " ").count >= 2,
            let status = Int(statusLine.split(separator: " ")[1])
        else { throw ClientError("malformed status line", kind: .malformedResponse) }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: " ")
        }
        buffer.removeFirst(headerEnd + 4)
        var body: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                let size = try readLine()
                guard let length = Int(size.split(separator: ";").first ?? "", radix: 16) else {
                    throw ClientError("malformed chunk size", kind: .malformedResponse)
                }
                if length == 0 {
                    _ = try readLine()
                    break
                }
                while buffer.count < length + 2 {
                    guard try fill() else {
                        throw ClientError("connection closed mid-response", kind: .closedMidResponse)
                    }
                }
                body.append(contentsOf: buffer[0..<length])
                buffer.removeFirst(length + 2)
            }
        } else {
            let length = headers["content-length"].flatMap { Int($0) } ?? 0
            while buffer.count < length {
                guard try fill() else { throw ClientError("connection closed mid-response", kind: .closedMidResponse) }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        }
        if headers["connection"]?.lowercased() == "close" { disconnect() }
        return HTTPReply(status: status, headers: headers, body: body)
    }

    private func readLine() throws(ClientError) -> String {
        while true {
            if let end = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[0..<end], as: UTF8.self).trimmingCharacters(in: "\r")
                buffer.removeFirst(end + 1)
                return line
            }
            guard try fill() else { throw ClientError("connection closed mid-response", kind: .closedMidResponse) }
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text = text.dropFirst() }
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}
