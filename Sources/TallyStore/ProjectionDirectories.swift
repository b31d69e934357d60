import Foundation

/// The projection environments of a data directory. The file `CURRENT` names the live one (as LevelDB's
/// `CURRENT` names its manifest), so that a rebuild switches to its fresh environment with one atomic rename;
/// without the file, the live environment is `projections`.
public struct ProjectionDirectories: Sendable {
    public let dataDirectory: String

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }

    private var pointer: String { dataDirectory + "/CURRENT" }

    /// The file that says the live projections commit without `fdatasync` (``ProjectionDurability/log``): it holds
    /// the boot id of the machine's boot they were opened in, and is removed once they are synced at a clean stop.
    /// Found at start with another boot id, it means the system went down with projection pages possibly unwritten.
    private var unsyncedMarker: String { dataDirectory + "/UNSYNCED" }

    /// The live environment's directory name.
    public func currentName() throws -> String {
        guard FileManager.default.fileExists(atPath: pointer) else { return "projections" }
        let name = try String(contentsOfFile: pointer, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, !name.contains("/") else {
            throw CorruptRecordError(table: "CURRENT", message: "\(pointer) does not name a projection directory")
        }
        return name
    }

    /// The live environment's path.
    public func current() throws -> String { dataDirectory + "/" + (try currentName()) }

    /// A fresh, empty directory for the environment a rebuild for the event at `seq` builds.
    public func fresh(forRebuildAt seq: UInt64) throws -> String {
        let path = dataDirectory + "/projections.\(seq)"
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// A fresh, empty directory for a compacted copy of the live environment (an erasure, I8).
    public func freshCopy() throws -> String {
        let path = dataDirectory + "/projections.compact-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// Makes `path` (a directory in the data directory) the live environment: writes `CURRENT.tmp`, syncs it,
    /// renames it over `CURRENT`, and syncs the directory.
    public func makeCurrent(_ path: String) throws(FileSystemError) {
        let name = URL(fileURLWithPath: path).lastPathComponent
        try writeSynced(pointer, contents: name + "\n")
    }

    /// Writes `contents` to `path` atomically: into `path.tmp`, synced, renamed over `path`, and the directory
    /// synced.
    private func writeSynced(_ path: String, contents: String) throws(FileSystemError) {
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw FileSystemError("open", path: temporary) }
        defer { close(descriptor) }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written >= 0 else { throw FileSystemError("write", path: temporary) }
        guard written == bytes.count else { throw FileSystemError("write", path: temporary, code: EIO) }
        guard fsync(descriptor) == 0 else { throw FileSystemError("fsync", path: temporary) }
        guard rename(temporary, path) == 0 else { throw FileSystemError("rename", path: temporary) }
        try syncDirectory()
    }

    private func syncDirectory() throws(FileSystemError) {
        let directory = open(dataDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw FileSystemError("open", path: dataDirectory) }
        defer { close(directory) }
        guard fsync(directory) == 0 else { throw FileSystemError("fsync", path: dataDirectory) }
    }

    /// Whether the projections may be torn: a system crash (not a process crash, whose commits the kernel keeps)
    /// interrupted a run that committed them without syncing. Then no page of them can be trusted (LMDB reuses a
    /// synced snapshot's pages and may have written a newer meta page before the data it points to), and only the
    /// log, which every commit syncs, knows the events.
    public func projectionsMayBeTorn() throws -> Bool {
        guard FileManager.default.fileExists(atPath: unsyncedMarker) else { return false }
        let recorded = try String(contentsOfFile: unsyncedMarker, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return recorded != Self.bootID()
    }

    /// Removes every projection environment and `CURRENT`, so that the projections are folded again from the log:
    /// what a start does when ``projectionsMayBeTorn()``.
    public func discardProjections() throws {
        try removeEnvironments(except: nil)
        if FileManager.default.fileExists(atPath: pointer) { try FileManager.default.removeItem(atPath: pointer) }
        try markSynced()
    }

    /// Records that the live projections commit without syncing from now on, in this boot (synced to disk before
    /// the first such commit). Nil boot id: the machine has none to tell a reboot by, so this is refused and the
    /// projections must sync every commit.
    public func markUnsynced() throws(FileSystemError) {
        guard let boot = Self.bootID() else {
            throw FileSystemError("read", path: Self.bootIDPath, code: ENOENT)
        }
        try writeSynced(unsyncedMarker, contents: boot + "\n")
    }

    /// Records that the live projections are on disk (after their final `mdb_env_sync`).
    public func markSynced() throws(FileSystemError) {
        guard unlink(unsyncedMarker) == 0 || errno == ENOENT else {
            throw FileSystemError("unlink", path: unsyncedMarker)
        }
        try syncDirectory()
    }

    static let bootIDPath = "/proc/sys/kernel/random/boot_id"

    /// Whether this machine has a boot id, which ``markUnsynced()`` needs.
    public static var canTellBoots: Bool { bootID() != nil }

    /// This boot of the machine: Linux's random boot id, new at every boot.
    static func bootID() -> String? {
        guard let text = try? String(contentsOfFile: bootIDPath, encoding: .utf8) else { return nil }
        let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return id.isEmpty ? nil : id
    }

    /// Removes projection environments other than the live one: old ones after a switch, and the unfinished
    /// one of a rebuild a crash interrupted.
    public func removeStale() throws {
        try removeEnvironments(except: try currentName())
    }

    /// Removes every projection environment of the data directory but `kept`.
    private func removeEnvironments(except kept: String?) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: dataDirectory)
        where (name == "projections" || name.hasPrefix("projections.")) && name != kept {
            try FileManager.default.removeItem(atPath: dataDirectory + "/" + name)
        }
    }
}
