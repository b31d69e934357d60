import ArgumentParser
import TallyAPI

/// `tally cluster`: cluster mode's commands (SPEC §13, `Docs/cluster.md`).
struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster mode: the nodes, the partitions' leases and how far each partition is folded.",
        subcommands: [ClusterStatus.self])
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
