import TallyDelivery
import Testing

/// `Retry-After` (RFC 9110 §10.2.3), which the outbox honours on a webhook's 429 and 503 (T7).
@Suite("Retry-After")
struct RetryAfterTests {
    @Test("T7 seconds count from now; an IMF-fixdate is absolute; anything else is not read")
    func parses() {
        let now: Int64 = 1_000_000
        #expect(RetryAfter.notBefore("120", now: now) == now + 120_000)
        #expect(RetryAfter.notBefore(" 0 ", now: now) == now)
        #expect(RetryAfter.notBefore("99999999999999999999999", now: now) == .max)
        #expect(RetryAfter.notBefore("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == 784_111_777_000)
        #expect(RetryAfter.notBefore("Tue, 29 Feb 2028 23:59:59 GMT", now: now) == 1_835_481_599_000)
        for bad in [
            "", "-5", "1.5", "soon", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 36 Nov 1994 08:49:37 GMT",
        ] {
            #expect(RetryAfter.notBefore(bad, now: now) == nil, "\(bad)")
        }
    }
}
