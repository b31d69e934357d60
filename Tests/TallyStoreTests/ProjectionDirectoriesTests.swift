import Foundation
import Glibc
import TallyStore
import Testing

/// `CURRENT`, which names the live projection environment, and the errors of the calls that write it.
@Suite("Projection directories")
struct ProjectionDirectoriesTests {
    @Test("CURRENT names the live environment; without it the live one is `projections`")
    func currentNamesTheLiveEnvironment() throws {
        let directory = try TemporaryDirectory()
        let directories = ProjectionDirectories(dataDirectory: directory.path)
        #expect(try directories.currentName() == "projections")
        try directories.makeCurrent(directory.path + "/projections.42")
        #expect(try directories.currentName() == "projections.42")
        #expect(try directories.current() == directory.path + "/projections.42")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/CURRENT.tmp"))
    }

    @Test("a CURRENT that names no directory is a corrupt record, not an I/O failure")
    func garbageIsCorrupt() throws {
        let directory = try TemporaryDirectory()
        try "../elsewhere\n".write(toFile: directory.path + "/CURRENT", atomically: true, encoding: .utf8)
        #expect(throws: CorruptRecordError.self) {
            try ProjectionDirectories(dataDirectory: directory.path).currentName()
        }
    }

    @Test("a failing system call is reported with its operation, path and errno, captured at the call")
    func systemCallFailuresCarryErrno() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.path + "/missing"
        do {
            try ProjectionDirectories(dataDirectory: missing).makeCurrent(missing + "/projections.7")
            Issue.record("makeCurrent into a missing directory succeeded")
        } catch {
            #expect(error.operation == "open")
            #expect(error.path == missing + "/CURRENT.tmp")
            #expect(error.code == ENOENT)
            #expect(error.description.contains("No such file or directory"), "\(error)")
            #expect(!error.isOutOfSpace)
        }
    }
}
