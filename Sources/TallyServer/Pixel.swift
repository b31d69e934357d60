import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization
import TallyCore
import TallyEngine

/// `GET /v1/pixel.gif`: records a `url.hit` from a tracking pixel and always answers a 1×1 transparent GIF.
///
/// The contact and session come from the query (`contact`, `session`) or else from the cookies `tally_contact`
/// and `tally_session`; `url` and `id` from the query. A hit with no contact from either is an anonymous visitor
/// (I7): the cookie `tally_anon` names it, and a first hit without one records under a new random id and sets
/// the cookie. Bad parameters record nothing but still get the image — a page never shows a broken image — and
/// the rejection is logged with a running count.
final class Pixel: Sendable {
    /// Appends a hit: to the node's log, or to the cluster's.
    let append: @Sendable (Event) async throws -> Void
    let logger: Logger
    let rejected = Atomic<Int>(0)

    init(logger: Logger, append: @escaping @Sendable (Event) async throws -> Void) {
        self.append = append
        self.logger = logger
    }

    /// GIF89a, 1×1, one transparent colour.
    static let gif: [UInt8] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF,
        0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
        0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ]

    // A constant, valid header name: the initializer only fails on invalid names.
    // swift-format-ignore: NeverForceUnwrap
    static let pragma = HTTPField.Name("Pragma")!

    static func image(settingAnonymous anonymous: String? = nil) -> Response {
        var headers: HTTPFields = [
            .contentType: "image/gif",
            .cacheControl: "no-cache, no-store, must-revalidate, private, max-age=0",
            Self.pragma: "no-cache",
            .expires: "0",
        ]
        if let anonymous { headers[.setCookie] = Self.anonymousCookie(anonymous) }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: gif)))
    }

    /// The name of the first-party cookie that carries an anonymous visitor's id (I7).
    static let anonymousCookieName = "tally_anon"

    /// `tally_anon=<id>` for a year, on the whole site, sent on top-level navigations from other sites but not on
    /// their subrequests (`SameSite=Lax`). Not `HttpOnly`: the site's script reads it to send the id as
    /// `anonymousId` when the visitor identifies (I6).
    static func anonymousCookie(_ id: String) -> String {
        "\(anonymousCookieName)=\(id); Path=/; Max-Age=31536000; SameSite=Lax"
    }

    /// A new anonymous visitor's id: `anon-` and 26 random base-32 characters (130 bits).
    static func newAnonymousID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var generator = SystemRandomNumberGenerator()
        return "anon-" + String((0..<26).map { _ in alphabet[Int(generator.next() % 32)] })
    }

    /// The `name=value` pairs of the request's Cookie headers, percent-decoded.
    static func cookies(_ request: Request) -> [String: String] {
        var result: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let name = parts[0].trimmingCharacters(in: .whitespaces)
                let value = String(parts[1]).trimmingCharacters(in: .whitespaces)
                result[name] = value.removingPercentEncoding ?? value
            }
        }
        return result
    }

    func handle(_ request: Request) async -> Response {
        let query = request.uri.queryParameters
        let cookies = Self.cookies(request)
        func nonEmpty(_ value: Substring?) -> String? { value.flatMap { $0.isEmpty ? nil : String($0) } }
        let known = nonEmpty(query["contact"]) ?? cookies["tally_contact"] ?? cookies[Self.anonymousCookieName]
        let anonymous = known == nil ? Self.newAnonymousID() : nil
        let event = Event(
            type: .urlHit,
            contact: known ?? anonymous ?? "",
            at: wallClockMillis(),
            id: nonEmpty(query["id"]),
            url: nonEmpty(query["url"]),
            session: nonEmpty(query["session"]) ?? cookies["tally_session"])
        do {
            try event.validate()
            try await append(event)
            return Self.image(settingAnonymous: anonymous)
        } catch {
            let count = rejected.add(1, ordering: .relaxed).newValue
            TallyMetrics.rejected("pixel").increment()
            // The first rejection and then every thousandth: a misconfigured page must not flood the log.
            if count == 1 || count % 1000 == 0 {
                logger.info(
                    "pixel hit not recorded",
                    metadata: ["tally.reason": "\(error)", "tally.pixel_rejected_total": "\(count)"])
            }
        }
        return Self.image()
    }
}
