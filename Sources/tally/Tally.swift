import ArgumentParser

/// The `tally` command: the daemon and the tools that talk to it.
@main
struct Tally: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Event-sourced lead scoring: the daemon and its tools.",
        subcommands: [
            Serve.self, Send.self, Score.self, Explain.self, Points.self, Contact.self, Import.self, Rules.self,
            Rebuild.self,
            Verify.self, Backup.self, Outbox.self, Email.self, Clock.self, Contacts.self, Changes.self, Merge.self,
            Erase.self, Cluster.self, Bench.self, NATSBench.self,
        ]
    )
}
