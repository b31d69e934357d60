import TallyAPI
import TallyEngine

/// What a node asks every node about the partitions they hold, for the administrative routes that concern the whole
/// cluster (K4): the rules versions, the clock, the rebuilds, the outbox and its retry. Sent as JSON on
/// `tally.node.<name>.partitions`; each node answers for each partition it holds (``NodeAnswer``).
struct PartitionQuery: Codable, Sendable {
    enum Kind: String, Codable, Sendable {
        /// The rules versions (text only for ``version``), the version in force, and the rebuild progress.
        case rules
        /// The fold's now and the awards waiting to age.
        case clock
        /// The outbox's entries in key order (``state``, ``limit``).
        case outbox
        /// Retries the outbox entry ``key`` in the partition that has it.
        case retry
        /// A page of the contact list ``list`` (L1).
        case list
        /// A rebuild's dry run under rules ``version`` (A4).
        case preview
        /// The aliases the partition knows for ``names`` (I8: an erasure gathers a contact's ids).
        case aliases
        /// Erases ``names`` in the partition, with the keyed ``hash`` and the time ``at`` of the erasure (I8).
        case erase
        /// Up to ``limit`` score changes after the feed position ``after``, through stream sequence ``through`` (L2).
        case changes
        /// Whether the partition's log holds an event with the idempotency key ``names``'s first (S6).
        case logged
        /// The lowest and highest score within the bounds of ``list`` (L3).
        case scoreBounds
        /// The distribution of the score of ``list`` over ``span`` (L3): the same buckets in every partition.
        case histogram
        /// A5: the partition's projections against a fresh fold of its copy, by the node that holds it.
        case verify
    }

    var kind: Kind
    /// Each partition answers once its copy and fold have reached what the stream held at the query (read your
    /// writes; the rules queries always are, so that every partition counts the same publications).
    var settled = false
    var version: Int64?
    var state: String?
    var limit: Int?
    var key: String?
    var list: ContactListQuery?
    var names: [String]?
    var hash: String?
    var at: Int64?
    var after: String?
    var through: UInt64?
    /// The lowest and highest score of a histogram's buckets.
    var span: [Int64]?
}

/// One partition's answer to a ``PartitionQuery``: the fields of the query's kind, or why it failed.
struct PartitionAnswer: Codable, Sendable {
    var partition: Int
    var rules: [RulesVersionInfo]?
    var versionInForce: Int64?
    var rebuild: RebuildProgress?
    var clock: ClockSummary?
    var outbox: [OutboxItem]?
    var retried: OutboxItem?
    var list: ListPage?
    var preview: RebuildPreview?
    var aliases: [String]?
    var erased: PartitionErasureReport?
    var changes: [ChangeDocument]?
    /// The changes may go on after the last one given (the partition had more than it was asked for, or its answer
    /// was cut to fit one message).
    var changesCut: Bool?
    /// The `rebuild` event the partition's projections were rebuilt for (L2's `rebuild`).
    var changesRebuild: UInt64?
    var logged: Bool?
    /// The lowest and highest score within a list's bounds; nil when none.
    var bounds: [Int64]?
    var histogram: Histogram?
    /// A5 in the partition, and the node that verified it.
    var verify: VerifyReport?
    var node: String?

    /// A partition's histogram (L3), its buckets those of the query's span.
    struct Histogram: Codable, Sendable {
        struct Bucket: Codable, Sendable {
            var low: Int64
            var high: Int64
            var count: Int
            var complete: Bool
        }
        var buckets: [Bucket]
        var examined: Int
    }
    var failure: Failure?

    /// A partition's page of a contact list, and where it goes on.
    struct ListPage: Codable, Sendable {
        var items: [ContactListDocument.Item]
        var next: String?
    }

    /// The fold's clock in a partition (D1).
    struct ClockSummary: Codable, Sendable {
        var now: Int64?
        var aging: Int
        var nextDue: Int64?
    }

    /// An ``EngineError`` carried between nodes.
    struct Failure: Codable, Sendable {
        var kind: String
        var message: String
        var field: String?

        init(_ error: EngineError) {
            kind = Self.names.first { $0.kind == error.kind }?.name ?? "unavailable"
            message = error.message
            field = error.field
        }

        init(_ error: any Error) {
            if let error = error as? EngineError {
                self.init(error)
            } else if let error = error as? ClusterReadError {
                self.init(EngineError(.timedOut, error.description))
            } else {
                self.init(EngineError(.unavailable, "\(error)"))
            }
        }

        var error: EngineError {
            EngineError(Self.names.first { $0.name == kind }?.kind ?? .unavailable, message, field: field)
        }

        private static let names: [(kind: EngineError.Kind, name: String)] = [
            (.invalid, "invalid"), (.forbidden, "forbidden"), (.notFound, "not_found"), (.conflict, "conflict"),
            (.unavailable, "unavailable"), (.timedOut, "timed_out"),
        ]
    }
}

/// A node's answer to a ``PartitionQuery``: one answer per partition it holds. `cut`: the outbox entries, or a dry
/// run's changes and contacts reaching triggers, were cut to fit one NATS message, and the node's lists go as far
/// as this key (a list page cut says so in its own `next`).
struct NodeAnswer: Codable, Sendable {
    var partitions: [PartitionAnswer]
    var cut: String?
}
