import Foundation
import Logging

/// The process's limit of open file descriptors (RLIMIT_NOFILE). Each connection holds one, so the daemon raises
/// its soft limit to the hard limit at start, as most servers do (the soft default is often 1,024, less than one
/// socket's `limits.max_connections`), and warns when even the hard limit is below what the sockets may hold.
enum FileDescriptorLimit {
    /// Descriptors kept for everything but connections: LMDB environments, the log, spooled imports, outgoing
    /// webhook and SMTP connections.
    static let reserve = 256

    /// Raises the soft limit to the hard limit; logs a warning when the result is below `needing`.
    static func raise(needing: Int, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        if limit.rlim_cur < rlim_t(needing) {
            logger.warning(
                "the open-file limit is below what limits.max_connections may need; raise LimitNOFILE or lower it",
                metadata: ["tally.nofile": "\(limit.rlim_cur)", "tally.nofile_needed": "\(needing)"])
        }
    }
}
