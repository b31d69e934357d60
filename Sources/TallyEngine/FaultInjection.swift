import Foundation

/// Crash points for the crash tests (issue: reliability), enabled only by the environment variable
/// `TALLY_FAULT=point:probability[,point:probability…]`, read once at start; without it every check is one
/// dictionary lookup in an empty dictionary.
///
/// At an enabled point the process kills itself with SIGKILL (no cleanup, like `kill -9`) with the given
/// probability. Points: `writer` (inside the log's write transaction, after the batch's puts, before the
/// commit) and `projector` (inside a fold transaction, after its writes, before the commit). `rerun:P` is not a
/// crash: TallyStore's `WriteRerunFault` reads it and makes every write transaction run its body again with
/// probability P, as a full map does.
enum FaultInjection {
    static let points: [String: Double] = {
        guard let text = ProcessInfo.processInfo.environment["TALLY_FAULT"] else { return [:] }
        var points: [String: Double] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: ":")
            if parts.count == 2, let probability = Double(parts[1]) { points[String(parts[0])] = probability }
        }
        return points
    }()

    /// Kills the process at `point` when the environment enables it, with its probability.
    static func point(_ point: String) {
        guard let probability = points[point], Double.random(in: 0..<1) < probability else { return }
        kill(getpid(), SIGKILL)
    }
}
