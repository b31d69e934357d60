import ArgumentParser
import TallyAPI
import TallyClient

/// `tally cluster`: cluster mode's commands (SPEC §13, `Docs/cluster.md`).
struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster mode: the nodes, the partitions' leases and how far each partition is folded.",
        subcommands: [ClusterStatus.self, ClusterVerify.self])
}

/// `tally cluster status`: the node's view of the cluster (K4), from its admin socket.
struct ClusterStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the live nodes, each partition's lease holder, and the lag of the "
            + "partitions this node folds.")

    @OptionGroup var options: CommonOptions

    func run() throws {
        let reply = try options.adminClient().request("GET", "/v1/cluster")
        guard reply.status == 200 else { throw DaemonError(reply) }
        if options.json {
            print(reply.text, terminator: "")
            return
        }
        let status = try reply.decode(ClusterStatusDocument.self)
        print(
            "node \(status.node), \(status.partitions) partitions; live nodes: \(status.nodes.joined(separator: ", "))")
        for lease in status.leases {
            print("  partition \(lease.partition): \(lease.holder ?? "free (moving)")")
        }
        for held in status.held {
            print(
                "  here: partition \(held.partition) copied through stream sequence \(held.copiedThrough), "
                    + "log head \(held.logHead), folded \(held.projected) (lag \(held.logHead - held.projected))")
        }
    }
}

/// `tally cluster verify`: A5 for each partition the node holds (run it on every node for the whole cluster).
struct ClusterVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare each partition this node holds with a fresh fold of its copy; exit 1 on a difference.")

    @OptionGroup var options: CommonOptions

    func run() throws {
        let client = UnixHTTPClient(socketPath: try options.loadConfiguration().adminSocket, timeoutSeconds: 3600)
        let reply = try client.request("POST", "/v1/cluster/verify")
        guard reply.status == 200 else { throw DaemonError(reply) }
        let report = try reply.decode(ClusterVerifyDocument.self)
        if options.json {
            print(reply.text, terminator: "")
        } else {
            for partition in report.partitions {
                let outcome = partition.differences.isEmpty ? "ok" : "\(partition.differences.count) differences"
                print("partition \(partition.partition) at \(partition.checkpoint): \(outcome)")
                for difference in partition.differences { print("  \(difference)") }
            }
            if report.partitions.isEmpty { print("node \(report.node) holds no partition") }
        }
        if !report.passed { throw ExitCode(1) }
    }
}
