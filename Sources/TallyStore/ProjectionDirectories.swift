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
        let temporary = pointer + ".tmp"
        let descriptor = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw FileSystemError("open", path: temporary) }
        defer { close(descriptor) }
        let bytes = Array((name + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written >= 0 else { throw FileSystemError("write", path: temporary) }
        guard written == bytes.count else { throw FileSystemError("write", path: temporary, code: EIO) }
        guard fsync(descriptor) == 0 else { throw FileSystemError("fsync", path: temporary) }
        guard rename(temporary, pointer) == 0 else { throw FileSystemError("rename", path: temporary) }
        let directory = open(dataDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw FileSystemError("open", path: dataDirectory) }
        defer { close(directory) }
        guard fsync(directory) == 0 else { throw FileSystemError("fsync", path: dataDirectory) }
    }

    /// Removes projection environments other than the live one: old ones after a switch, and the unfinished
    /// one of a rebuild a crash interrupted.
    public func removeStale() throws {
        let live = try currentName()
        for name in try FileManager.default.contentsOfDirectory(atPath: dataDirectory)
        where (name == "projections" || name.hasPrefix("projections.")) && name != live {
            try FileManager.default.removeItem(atPath: dataDirectory + "/" + name)
        }
    }
}
