public import Crypto
import Foundation
public import TallyAPI
import TallyCore
public import TallyStore

/// What the folder's half of an erasure found and removed.
struct ErasedContact: Sendable {
    var contact: String
    var aliases: [String]
    var emails: Set<String>
    var removed: [UInt64]
    var record: UInt64
    var hash: String
}

extension ProjectionFolder {
    /// I8, on the projector's thread: folds the log to its head (so the contact's history is complete), marks the
    /// erasure in the projections, removes the contact's and its aliases' events from the log with the
    /// `contact.erased` record appended, then every projection record of theirs, and clears the mark. After a
    /// crash the mark makes the next start finish it; each step can run again. Nil for a contact never seen.
    func erase(_ id: String, key: SymmetricKey, at: Int64) throws -> ErasedContact? {
        let head = try log.head()
        while checkpoint < head, try step(through: head) {}
        let (contact, known, aliases, history) = try store.read {
            txn -> (String, Bool, [String], [UInt64]) in
            let contact = try txn.canonical(of: id) ?? id
            let pending = try txn.pendingErasure().map { ByteString($0) }
            let known = try txn.contact(contact) != nil || pending == ByteString(contact)
            return (contact, known, try txn.aliases(of: contact), try txn.history(contact))
        }
        guard known || !history.isEmpty else { return nil }
        try store.update { txn in try txn.setPendingErasure(contact) }
        let names: Set<ByteString> = Set(([contact] + aliases).map { ByteString($0) })
        let hash = TallyEngine.erasureHash(of: contact, key: key)
        let (removed, record) = try log.erase(
            history, tail: checkpoint,
            belongs: { event in
                if names.contains(ByteString(event.contact)) { return true }
                guard let target = event.mergeTarget else { return false }
                return names.contains(ByteString(target))
            },
            record: Event(type: .contactErased, contact: hash, at: at, id: "erased:" + hash))
        var emails: Set<String> = []
        try store.update { txn in
            emails = try txn.erase(contact).emails
            try txn.setPendingErasure(nil)
        }
        contactCache.removeAll()
        sessionCache.removeAll()
        return ErasedContact(
            contact: contact, aliases: aliases, emails: emails, removed: removed, record: record, hash: hash)
    }
}

extension ProjectionFolder {
    /// I8 in a cluster partition (K4), on the projector's thread: folds the copy to its head, then finds every
    /// event of `names` and of the aliases this partition knows for them (their own, the merges naming them, those
    /// relayed to them), marks the erasure in the projections (``StreamErasure``: what the holder then deletes from
    /// the stream), removes the events from the copy, and every projection record of those ids. With `names` nil,
    /// it finishes the erasure the mark holds (a crash interrupted it; each step can run again). Nil when the
    /// partition holds nothing of them. Returns the mark and the email addresses its records held.
    public func erase(
        names given: [String]?, hash: String, at: Int64
    ) throws -> (erasure: StreamErasure, emails: Set<String>)? {
        var erasure: StreamErasure
        if let given {
            let head = try log.head()
            while checkpoint < head, try step(through: head) {}
            var names = Set(given.map { ByteString($0) })
            let known = try store.read { txn -> Bool in
                for name in given { for alias in try txn.aliases(of: name) { names.insert(ByteString(alias)) } }
                for name in names where try txn.contact(name.string) != nil { return true }
                return false
            }
            var positions: [UInt64] = []
            try log.forEach { logged in
                if names.contains(ByteString(logged.event.contact))
                    || logged.event.mergeTarget.map({ names.contains(ByteString($0)) }) == true
                {
                    positions.append(logged.seq)
                }
                return true
            }
            guard known || !positions.isEmpty else { return nil }
            erasure = StreamErasure(
                names: names.sorted().map { $0.string }, hash: hash, at: at, positions: positions)
            try store.update { txn in try txn.setPendingStreamErasure(erasure) }
        } else {
            guard let pending = try store.read({ txn in try txn.pendingStreamErasure() }) else { return nil }
            erasure = pending
        }
        let names = Set(erasure.names.map { ByteString($0) })
        _ = try log.remove { event in
            names.contains(ByteString(event.contact))
                || event.mergeTarget.map({ names.contains(ByteString($0)) }) == true
        }
        var emails: Set<String> = []
        try store.update { txn in
            for name in erasure.names {
                emails.formUnion(try txn.erase(name).emails)
            }
        }
        contactCache.removeAll()
        sessionCache.removeAll()
        return (erasure, emails)
    }
}

extension TallyEngine {
    /// I8: erases a contact with its aliases — their events leave the log with their idempotency entries, every
    /// projection record of theirs goes, a `contact.erased` event holding only a keyed hash of the id is
    /// appended — then overwrites the free pages of both environments and checks that no file under `data_dir`
    /// holds the id, an alias or an email address of the contact. 404 for a contact never seen; 409 while a rebuild
    /// runs (it folds the log being erased); 500 naming the files when the check finds a residue.
    public func erase(contact id: String) async throws -> ErasureReport {
        guard !projector.isRebuilding else {
            throw EngineError(.conflict, "a rebuild is running: erase the contact once it has finished")
        }
        let key = try erasureKey()
        let at = wallClockMillis()
        let projector = self.projector
        guard
            let erased = try await outbox.withoutAttempts({
                try await projector.exclusively({ folder in try folder.erase(id, key: key, at: at) })
            })
        else { throw EngineError(.notFound, "unknown contact \"\(id)\"") }
        writer.head.advance(to: erased.record)
        // LMDB leaves a deleted record's bytes in free pages and in the unused space of live ones: both files are
        // replaced by compacted copies, which hold the live records only.
        let log = self.log
        try await writer.exclusively { try log.compact() }
        try await projector.compactProjections()
        let directory = configuration.dataDirectory
        return try await blocking.run {
            let needles = ([erased.contact] + erased.aliases + erased.emails.sorted()).map { Array($0.utf8) }
            let residue = ResidueScan.files(under: directory, containing: needles).map(\.path)
            let report = ErasureReport(
                hash: erased.hash, aliases: erased.aliases.count, removedEvents: erased.removed.count,
                seq: erased.record, residue: residue)
            guard residue.isEmpty else { throw ErasureResidueError(report: report) }
            return report
        }
    }

    /// The keyed hash a `contact.erased` record holds for the contact `id` (HMAC-SHA-256 under `key`, hex).
    public static func erasureHash(of id: String, key: SymmetricKey) -> String {
        HMAC<SHA256>.authenticationCode(for: Array(id.utf8), using: key)
            .map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    /// The secret of the erasure hashes: 32 random bytes in `data_dir/erasure.key`, made on first use (mode 0600).
    /// Without it a hash cannot be tested against a guessed id; backups should hold it apart from the data.
    func erasureKey() throws -> SymmetricKey {
        let path = configuration.dataDirectory + "/erasure.key"
        if let data = FileManager.default.contents(atPath: path), data.count == 32 {
            return SymmetricKey(data: data)
        }
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Data($0) }
        guard FileManager.default.createFile(atPath: path, contents: bytes, attributes: [.posixPermissions: 0o600])
        else { throw EngineError(.unavailable, "cannot write the erasure key \(path)") }
        return key
    }

    /// Finishes an erasure a crash interrupted (the projections hold its mark).
    func finishPendingErasure() async {
        guard let pending = try? projections.read({ try $0.pendingErasure() }) else { return }
        logger.warning("finishing an interrupted erasure")
        do {
            _ = try await erase(contact: pending)
        } catch {
            logger.error("the interrupted erasure failed", metadata: ["tally.error": "\(error)"])
        }
    }
}

/// An erasure whose check found the contact's id or email address still in a file under `data_dir`.
public struct ErasureResidueError: Error, CustomStringConvertible {
    public var report: ErasureReport

    public init(report: ErasureReport) {
        self.report = report
    }

    public var description: String {
        "the contact was erased from the log and the projections, but its id or email address is still in "
            + report.residue.joined(separator: ", ")
    }
}
