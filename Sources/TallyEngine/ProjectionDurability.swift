/// How the live projections reach the disk (`projections_durability` in the configuration).
///
/// The projections are derivable: everything in them is folded from the log, whose every commit is durable
/// before its 202. So they need not pay an `fdatasync` per batch. A process crash (kill -9) loses no committed
/// projection page either way, since the kernel holds them; only a system crash (power loss, kernel panic) can.
public enum ProjectionDurability: String, Sendable {
    /// Commit without syncing (LMDB's `MDB_NOSYNC`), sync once at a clean stop, and after a system crash fold the
    /// projections again from the log: the start sees the crash by the boot id recorded in `UNSYNCED`.
    case log
    /// Sync every projection commit (data pages, then the meta page), as the log does.
    case commit
}
