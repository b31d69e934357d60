import Foundation
public import Hummingbird
import TallyAPI

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
