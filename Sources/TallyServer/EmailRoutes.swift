import Hummingbird
import TallyAPI
import TallyEngine

/// The email template endpoints of the admin socket (SPEC §12).
extension Routes {
    /// `GET /v1/email/preview?template=NAME&contact=ID[&trigger=ID]` (E3): the message the template makes for the
    /// contact, as it would be sent.
    func previewEmail(_ request: Request) async throws -> Response {
        let query = try Self.emailPreviewQuery(request)
        try await awaitProjection(request)
        let preview = try await engine.previewEmail(
            template: query.template, contact: query.contact, trigger: query.trigger)
        return JSONResponse.make(preview)
    }

    /// The parameters of `GET /v1/email/preview`: the template and the contact are required.
    static func emailPreviewQuery(_ request: Request) throws -> (template: String, contact: String, trigger: String?) {
        let parameters = request.uri.queryParameters
        guard let template = parameters["template"].map(String.init), !template.isEmpty else {
            throw APIError(.badRequest, "\"template\" is required", field: "template")
        }
        guard let contact = parameters["contact"].map(String.init), !contact.isEmpty else {
            throw APIError(.badRequest, "\"contact\" is required", field: "contact")
        }
        return (template, contact, parameters["trigger"].map(String.init))
    }
}
