import Glibc

/// A failed system call on a file: the call, the path, and the `errno` it set, captured right at the call (before
/// anything else, such as a `close`, can overwrite `errno`).
public struct FileSystemError: Error, Sendable, CustomStringConvertible {
    /// The system call: `open`, `write`, `fsync`, `rename`, …
    public let operation: String
    public let path: String
    /// The `errno` value.
    public let code: Int32

    public init(_ operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    /// An error for the call that just failed, with the current `errno`.
    init(_ operation: String, path: String) {
        self.init(operation, path: path, code: errno)
    }

    /// The disk is full or failing: retrying once space is back can succeed.
    public var isOutOfSpace: Bool { code == ENOSPC || code == EIO || code == EDQUOT }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }
}
