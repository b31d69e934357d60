import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import TallyAPI
import TallyCore
import TallyEngine

/// Segment-compatible ingest (SPEC I6): `POST /v1/batch` and the single-call routes in the Segment HTTP Tracking
/// API format that analytics.js, RudderStack and Jitsu send, mapped to events by ``SegmentMapping``.
///
/// The body is read with Foundation's `JSONDecoder`: these calls come from browsers and SDK batches, not the bulk
/// NDJSON path, so the hand-written decoder's speed is not needed here (Docs/decisions.md).
extension Routes {
    func addSegmentRoutes(to router: Router<BasicRequestContext>, viaIngest: Bool) {
        let engine = self.engine
        Self.addSegmentRoutes(to: router, configuration: engine.configuration, viaIngest: viaIngest) { events in
            try await engine.append(events, refusedMerges: .skip)
        }
    }

    /// The Segment routes, whose events `append` appends — to a node's log or to the cluster's — leaving out the
    /// merges it refuses (analytics.js sends `identify` with both ids on every page load: a merge already made, or
    /// one the ingest socket may not make, is left out rather than failing the batch's other calls, I2).
    static func addSegmentRoutes(
        to router: Router<BasicRequestContext>, configuration: Configuration, viaIngest: Bool,
        append: @escaping @Sendable ([Event]) async throws -> AppendReceipt
    ) {
        for (path, route) in SegmentRoute.paths {
            router.post(RouterPath(path)) { request, _ in
                try await postSegment(
                    request, route: route, viaIngest: viaIngest, configuration: configuration, append: append)
            }
        }
    }

    /// Counts calls acknowledged without an event, by reason (`tally_segment_calls_ignored_total`).
    static func segmentIgnored(_ reason: SegmentIgnoredReason) -> Counter {
        Counter(label: "tally_segment_calls_ignored_total", dimensions: [("reason", reason.rawValue)])
    }

    /// One Segment request: inflate, parse, check the write key, map every call, append all of the request's
    /// events at once, and answer `200 {"success": true, …}` after the durable commit.
    static func postSegment(
        _ request: Request, route: SegmentRoute, viaIngest: Bool, configuration: Configuration,
        append: @Sendable ([Event]) async throws -> AppendReceipt
    ) async throws -> Response {
        let limits = configuration.limits
        let segment = configuration.segment
        let receivedAt = wallClockMillis()
        var request = request
        let raw: ByteBuffer
        do {
            raw = try await request.collectBody(upTo: limits.maxBodyBytes)
        } catch {
            TallyMetrics.rejected("too_large").increment()
            throw APIError(.contentTooLarge, "request body larger than \(limits.maxBodyBytes) bytes")
        }
        let body = try Self.decodedBody(raw, encoding: request.headers[.contentEncoding], limit: limits.maxBodyBytes)
        let document: JSONValue
        do {
            document = try JSONDecoder().decode(JSONValue.self, from: body)
        } catch {
            TallyMetrics.rejected("invalid").increment()
            throw APIError(.badRequest, "the body is not a JSON document")
        }
        if let key = segment.writeKey {
            let given = Self.basicUser(request.headers[.authorization]) ?? SegmentMapping.writeKey(in: document)
            guard let given, Self.constantTimeEqual(given, key) else {
                TallyMetrics.rejected("unauthorized").increment()
                var response = JSONResponse.make(
                    ErrorDocument(
                        error: .init(
                            status: 401,
                            message: "a write key is required: send it as the Basic-auth user name or as \"writeKey\"",
                            line: nil, field: nil)), status: .unauthorized)
                response.headers[.wwwAuthenticate] = "Basic realm=\"tally\""
                return response
            }
        }
        let batch: SegmentBatch
        do {
            batch = try segment.mapping.batch(document, route: route, receivedAt: receivedAt, viaIngest: viaIngest)
        } catch {
            TallyMetrics.rejected("invalid").increment()
            throw APIError(.badRequest, error.description, field: error.field)
        }
        let receipt = batch.events.isEmpty ? AppendReceipt() : try await append(batch.events)
        for (reason, count) in batch.ignored { Self.segmentIgnored(reason).increment(by: Int64(count)) }
        let ignored = batch.ignored.values.reduce(0, +)
        return JSONResponse.make(
            SegmentReceipt(
                accepted: batch.calls - receipt.duplicates, duplicates: receipt.duplicates, ignored: ignored,
                firstSeq: receipt.firstSeq, lastSeq: receipt.lastSeq))
    }

    /// The body as sent, or inflated for `Content-Encoding: gzip` / `deflate`, within the body size limit.
    static func decodedBody(_ raw: ByteBuffer, encoding: String?, limit: Int) throws -> Data {
        let encoding = encoding?.trimmingCharacters(in: .whitespaces).lowercased() ?? "identity"
        switch encoding {
        case "", "identity":
            return Data(buffer: raw)
        case "gzip", "x-gzip", "deflate":
            do {
                return Data(
                    try raw.withUnsafeReadableBytes { bytes throws(InflateError) in
                        try BodyInflater.inflate(bytes, limit: limit)
                    })
            } catch .tooLarge {
                TallyMetrics.rejected("too_large").increment()
                throw APIError(.contentTooLarge, "request body larger than \(limit) bytes once inflated")
            } catch .malformed(let reason) {
                TallyMetrics.rejected("invalid").increment()
                throw APIError(.badRequest, "the \(encoding) body cannot be inflated: \(reason)")
            }
        default:
            TallyMetrics.rejected("invalid").increment()
            throw APIError(
                .unsupportedMediaType, "Content-Encoding \"\(encoding)\" is not supported (gzip, deflate, identity)")
        }
    }

    /// The user name of `Authorization: Basic base64(user:password)`; nil for another scheme or a malformed value.
    static func basicUser(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8)
        else { return nil }
        let user = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
        return user?.isEmpty == false ? user : nil
    }

    /// Compares the bytes of two strings in time that depends only on their lengths.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}
