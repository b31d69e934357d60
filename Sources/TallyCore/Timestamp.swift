/// Conversions between RFC 3339 text and epoch milliseconds, without Foundation and without a clock.
public enum Timestamp {
    /// The earliest and latest instants Tally accepts: years 0001 through 9999.
    public static let validRange: ClosedRange<Int64> = -62_135_596_800_000...253_402_300_799_999

    /// Parses an RFC 3339 date-time (`2026-01-02T03:04:05.678Z`, `…+02:00`) into epoch milliseconds.
    ///
    /// Fractions beyond milliseconds are truncated. Returns nil for anything malformed or out of range,
    /// including a leap second (`:60`), which no tracker emits and which would be ambiguous on replay.
    public static func parse(_ text: some StringProtocol) -> Int64? {
        var utf8 = Array(text.utf8)
        return utf8.withUnsafeMutableBufferPointer { parse(UnsafeRawBufferPointer($0)) }
    }

    /// Parses RFC 3339 from raw UTF-8 bytes; see ``parse(_:)-(StringProtocol)``.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        var index = 0
        func digits(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<count {
                let byte = bytes[index]
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
                index += 1
            }
            return value
        }
        func expect(_ allowed: UInt8...) -> Bool {
            guard index < bytes.count, allowed.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = digits(4), expect(0x2D), let month = digits(2), expect(0x2D), let day = digits(2),
            expect(0x54, 0x74, 0x20),  // T, t or space (RFC 3339 §5.6 note)
            let hour = digits(2), expect(0x3A), let minute = digits(2), expect(0x3A), let second = digits(2)
        else { return nil }
        guard year >= 1, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour <= 23,
            minute <= 59, second <= 59
        else { return nil }
        var millis = 0
        if index < bytes.count, bytes[index] == 0x2E {  // fraction
            index += 1
            var count = 0
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                if count < 3 { millis = millis * 10 + Int(bytes[index] - 0x30) }
                count += 1
                index += 1
            }
            guard count > 0 else { return nil }
            for _ in count..<max(count, 3) { millis *= 10 }
        }
        guard index < bytes.count else { return nil }
        var offsetMinutes = 0
        switch bytes[index] {
        case 0x5A, 0x7A:  // Z, z
            index += 1
        case 0x2B, 0x2D:  // +, -
            let sign = bytes[index] == 0x2B ? 1 : -1
            index += 1
            guard let offsetHour = digits(2), expect(0x3A), let offsetMinute = digits(2), offsetHour <= 23,
                offsetMinute <= 59
            else { return nil }
            offsetMinutes = sign * (offsetHour * 60 + offsetMinute)
        default:
            return nil
        }
        guard index == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        let result = seconds * 1000 + Int64(millis)
        return validRange.contains(result) ? result : nil
    }

    /// Formats epoch milliseconds as RFC 3339 in UTC, with milliseconds only when they are not zero.
    public static func format(_ millis: Int64) -> String {
        let (seconds, ms) = millis.quotientAndRemainder(dividingBy: 1000)
        let (secs, msPositive) = ms < 0 ? (seconds - 1, ms + 1000) : (seconds, ms)
        let (days, secondOfDay) = secs.quotientAndRemainder(dividingBy: 86_400)
        let (day, sod) = secondOfDay < 0 ? (days - 1, secondOfDay + 86_400) : (days, secondOfDay)
        let (y, m, d) = civilFromDays(Int(day))
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text =
            "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(Int(sod / 3600), 2)):\(pad(Int(sod % 3600 / 60), 2)):"
            + pad(Int(sod % 60), 2)
        if msPositive != 0 { text += "." + pad(Int(msPositive), 3) }
        return text + "Z"
    }

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Durations in the rules and config files: `30s`, `15m`, `24h`, `7d` (also `500ms`).
public enum DurationText {
    /// Parses a duration into milliseconds; nil when malformed, negative or absurdly large.
    public static func parse(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(number),
                value <= Int64.max / factor / 1000
            else { continue }
            return value * factor
        }
        return nil
    }

    /// Formats milliseconds in the largest whole unit: `2h`, `90s`, `1500ms`.
    public static func format(_ millis: Int64) -> String {
        for (suffix, factor) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        where millis != 0 && millis % factor == 0 {
            return "\(millis / factor)\(suffix)"
        }
        return "\(millis)ms"
    }

    /// Describes a measured duration briefly for people: `2h`, `6m`, `1h 30m`, `45s`, `1.5s`.
    public static func describe(_ millis: Int64) -> String {
        if millis < 1000 { return "\(millis)ms" }
        if millis < 60_000 {
            return millis % 1000 == 0 ? "\(millis / 1000)s" : "\(millis / 1000).\(millis % 1000 / 100)s"
        }
        var parts: [String] = []
        var rest = millis / 1000
        for (suffix, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            parts.append("\(rest / size)\(suffix)")
            rest %= size
            if parts.count == 2 { break }
        }
        return parts.joined(separator: " ")
    }
}
