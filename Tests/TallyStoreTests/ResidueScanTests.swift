import Foundation
import Testing

@testable import TallyStore

/// The erasure's final check (I8): a byte string is found in any file under a directory, also across the scan's
/// 1 MiB chunks, and only where it is.
@Suite("I8 the residue scan of the data directory")
struct ResidueScanTests {
    @Test(
        "I8 a needle is found in the files that hold it, across a chunk boundary and in a subdirectory; absent ones are not"
    )
    func findsNeedles() throws {
        let directory = try TemporaryDirectory()
        let needle = Array("zq-erase-7731@forget.example".utf8)
        var large = [UInt8](repeating: 0x41, count: (1 << 20) + 4096)
        large.replaceSubrange(((1 << 20) - 7)..<((1 << 20) - 7 + needle.count), with: needle)  // straddles the chunks
        try FileManager.default.createDirectory(
            atPath: directory.path + "/log", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory.path + "/log/data.mdb", contents: Data(large))
        FileManager.default.createFile(
            atPath: directory.path + "/clean.mdb", contents: Data(repeating: 0x7A, count: 5000))
        FileManager.default.createFile(
            atPath: directory.path + "/prefix.mdb", contents: Data(needle.dropLast()))  // all but the last byte
        let found = ResidueScan.files(under: directory.path, containing: [needle, Array("absent".utf8)])
        #expect(found.map(\.path) == [directory.path + "/log/data.mdb"])
        #expect(found.first?.needle == "zq-erase-7731@forget.example")
        #expect(ResidueScan.contains(Array("xxabcxx".utf8), Array("abc".utf8)))
        #expect(!ResidueScan.contains(Array("xxabxcx".utf8), Array("abc".utf8)))
        #expect(!ResidueScan.contains(Array("ab".utf8), Array("abc".utf8)))
    }
}
