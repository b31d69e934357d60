import Foundation
import Logging

/// The process's limit of open file descriptors (RLIMIT_NOFILE). Each connection holds one, and running out is
/// fatal: libdispatch traps when its thread-pool monitor cannot open `/proc` (measured: SIGILL in
/// `_dispatch_workq_monitor_pools` once 20,000 connections filled a 20,000 limit). So the daemon raises its soft
/// limit to the hard limit at start, as most servers do (the soft default is often 1,024), and bounds the
/// connections per socket by what the limit leaves once `reserve` descriptors are set aside.
enum FileDescriptorLimit {
    /// Descriptors kept for everything but connections: LMDB environments, the log, spooled imports, outgoing
    /// webhook and SMTP connections, libdispatch's `/proc` reads, and connections accepted but not yet evicted.
    static let reserve = 512

    /// Raises the soft limit to the hard limit and returns the connections each of `sockets` sockets may hold:
    /// `configured`, or less when the limit cannot hold that many (with a warning).
    static func connectionsPerSocket(configured: Int, sockets: Int, logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return configured }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let available = Int(clamping: limit.rlim_cur) - reserve
        let allowed = max(1, available / max(1, sockets))
        guard allowed < configured else { return configured }
        logger.warning(
            """
            the open-file limit holds fewer connections than limits.max_connections; each socket takes fewer. \
            Raise LimitNOFILE (ulimit -n) to allow more
            """,
            metadata: [
                "tally.nofile": "\(limit.rlim_cur)", "tally.max_connections": "\(configured)",
                "tally.max_connections_effective": "\(allowed)",
            ])
        return allowed
    }
}
