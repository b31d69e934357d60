import Foundation
import Hummingbird
import TallyAPI
import TallyCore
import TallyEngine

extension Routes {
    /// `POST /v1/merge {"from": A, "into": B[, "id": K]}` (I2): a `contact.merge` event, answered like a post of
    /// events (202 once durable). 409 for a merge into itself or one that would make a cycle; on the ingest socket
    /// (`viaIngest`), 403 when A is known (I1).
    func merge(_ request: Request, viaIngest: Bool) async throws -> Response {
        let merge = try await Self.mergeRequest(request)
        return Self.accepted(
            try await engine.merge(from: merge.from, into: merge.into, viaIngest: viaIngest, id: merge.id))
    }

    /// The body of `POST /v1/merge`, read and checked for its form.
    static func mergeRequest(_ request: Request) async throws -> MergeRequest {
        var request = request
        let body = try await request.collectBody(upTo: 16 << 10)
        let merge: MergeRequest
        do {
            merge = try JSONDecoder().decode(MergeRequest.self, from: Data(buffer: body))
        } catch {
            throw APIError(.badRequest, "expected a JSON object with \"from\" and \"into\" contact ids")
        }
        if let id = merge.id, !EventLimits.id.contains(id.utf8.count) {
            throw APIError(.badRequest, "\"id\" must be 1–128 bytes long", field: "id")
        }
        try TallyEngine.checkMergeContacts(from: merge.from, into: merge.into)
        return merge
    }

    /// `DELETE /v1/contacts/{id}` (I8, admin socket): erases the contact with its aliases; 200 with the report
    /// once nothing of it is left under `data_dir`.
    func erase(_ context: BasicRequestContext) async throws -> Response {
        let id = try Self.contactID(context)
        do {
            return JSONResponse.make(try await engine.erase(contact: id))
        } catch let error as ErasureResidueError {
            throw APIError(.internalServerError, error.description)
        }
    }
}
