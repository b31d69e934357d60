/// The `Retry-After` header of an HTTP response (RFC 9110 §10.2.3): a number of seconds or an HTTP-date.
public enum RetryAfter {
    /// The wall-clock epoch milliseconds before which a request should not be retried, or nil when `value` is
    /// neither a non-negative number of seconds nor an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`; the obsolete
    /// RFC 850 and asctime forms are not read). `now` is the current wall-clock time in epoch milliseconds.
    public static func notBefore(_ value: String, now: Int64) -> Int64? {
        let text = Array(
            value.utf8.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }
                .reversed())
        guard !text.isEmpty else { return nil }
        if text.allSatisfy(isDigit) {
            var seconds: Int64 = 0
            for digit in text {
                let (times, overflow) = seconds.multipliedReportingOverflow(by: 10)
                guard !overflow else { return .max }
                seconds = times + Int64(digit - 0x30)
            }
            let (millis, overflow) = seconds.multipliedReportingOverflow(by: 1000)
            guard !overflow else { return .max }
            let (sum, late) = now.addingReportingOverflow(millis)
            return late ? .max : sum
        }
        return imfFixdate(text)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

    /// `Sun, 06 Nov 1994 08:49:37 GMT` → epoch milliseconds.
    private static func imfFixdate(_ text: [UInt8]) -> Int64? {
        // Fixed width: "Www, DD Mmm YYYY HH:MM:SS GMT" is 29 bytes.
        guard text.count == 29, let string = String(validating: text, as: UTF8.self) else { return nil }
        let parts = string.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0].count == 4, parts[0].last == ",", days.contains(String(parts[0].prefix(3))),
            parts[5] == "GMT", let month = months.firstIndex(of: String(parts[2]))
        else { return nil }
        func number(_ part: Substring) -> Int64? {
            guard !part.isEmpty, part.utf8.allSatisfy(isDigit) else { return nil }
            return Int64(part)
        }
        let clock = parts[4].split(separator: ":", omittingEmptySubsequences: false)
        guard parts[1].count == 2, parts[3].count == 4, clock.count == 3, clock.allSatisfy({ $0.count == 2 }),
            let day = number(parts[1]), let year = number(parts[3]), let hour = number(clock[0]),
            let minute = number(clock[1]), let second = number(clock[2]), (1...31).contains(day), hour < 24,
            minute < 60, second < 61
        else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm).
        let m = Int64(month + 1)
        let y = m <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let epochDays = era * 146_097 + doe - 719_468
        return ((epochDays * 24 + hour) * 60 + minute) * 60_000 + second * 1000
    }
}
