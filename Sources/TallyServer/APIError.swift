import Foundation
public import Hummingbird
import TallyAPI
import TallyEngine

/// An error answered as JSON: `{"error": {"status", "message", "line"?, "field"?}}`.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    /// For rejected events: the 1-based line of the request body and the field at fault.
    public var line: Int?
    public var field: String?

    public init(_ status: HTTPResponse.Status, _ message: String, line: Int? = nil, field: String? = nil) {
        self.status = status
        self.message = message
        self.line = line
        self.field = field
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ErrorDocument(error: .init(status: status.code, message: message, line: line, field: field))
        return JSONResponse.make(body, status: status)
    }
}

extension APIError {
    /// The one mapping of the engine's errors to HTTP statuses.
    init(_ error: EngineError) {
        let status: HTTPResponse.Status =
            switch error.kind {
            case .invalid: .badRequest
            case .forbidden: .forbidden
            case .notFound: .notFound
            case .conflict: .conflict
            case .unavailable: .serviceUnavailable
            case .timedOut: .gatewayTimeout
            }
        self.init(status, error.message, line: error.line, field: error.field)
    }
}

/// Answers every ``EngineError`` a route lets through as its ``APIError``, so that routes call the engine
/// without a catch of their own.
struct EngineErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as EngineError {
            throw APIError(error)
        }
    }
}

/// Encodes response bodies as JSON with sorted keys, so that answers are stable and easy to diff.
enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data(#"{"error":{"message":"encoding failed"}}"#.utf8)
        var buffer = ByteBuffer()
        buffer.writeBytes(data)
        buffer.writeString("\n")
        return Response(
            status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: buffer))
    }
}
