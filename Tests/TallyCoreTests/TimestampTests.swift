import Foundation
import TallyCore
import Testing

/// `value` in decimal, left-padded with zeros to `width` digits.
private func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, width - text.count)) + text
}

@Suite("Timestamp: RFC 3339 ⇄ epoch milliseconds")
struct TimestampTests {
    @Test(
        "known instants parse to their epoch milliseconds",
        arguments: [
            ("1970-01-01T00:00:00Z", Int64(0)),
            ("1970-01-01T00:00:00.001Z", 1),
            ("1969-12-31T23:59:59.999Z", -1),
            ("1969-12-31T23:59:59Z", -1_000),
            ("2000-02-29T00:00:00Z", 951_782_400_000),  // leap day
            ("2000-03-01T00:00:00Z", 951_868_800_000),
            ("2026-01-01T00:00:00Z", 1_767_225_600_000),
            ("2026-01-02T03:04:05.678Z", 1_767_323_045_678),
            ("1970-01-01T02:00:00+02:00", 0),
            ("1970-01-01T00:00:00+02:00", -7_200_000),
            ("1969-12-31T18:30:00-05:30", 0),
            ("1970-01-01T00:00:00-05:30", 19_800_000),
            ("2026-01-01T05:30:00+05:30", 1_767_225_600_000),
            ("2025-12-31T18:30:00-05:30", 1_767_225_600_000),
            ("2026-01-01T00:00:00+00:00", 1_767_225_600_000),
            ("2026-01-01T00:00:00-00:00", 1_767_225_600_000),
            ("2026-01-01t00:00:00z", 1_767_225_600_000),
            ("2026-01-01 00:00:00Z", 1_767_225_600_000),
            ("1969-07-20T20:17:40Z", -14_182_940_000),
            ("1600-02-29T00:00:00Z", -11_670_998_400_000),  // 400-year leap day
            ("0001-01-01T00:00:00Z", -62_135_596_800_000),
            ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
        ])
    func knownInstants(text: String, millis: Int64) {
        #expect(Timestamp.parse(text) == millis)
    }

    @Test("fractions are truncated to milliseconds")
    func fractions() {
        #expect(Timestamp.parse("1970-01-01T00:00:00.5Z") == 500)
        #expect(Timestamp.parse("1970-01-01T00:00:00.05Z") == 50)
        #expect(Timestamp.parse("1970-01-01T00:00:00.123Z") == 123)
        #expect(Timestamp.parse("1970-01-01T00:00:00.1239Z") == 123)
        #expect(Timestamp.parse("1970-01-01T00:00:00.999999999Z") == 999)
        #expect(Timestamp.parse("1970-01-01T00:00:00.000000001Z") == 0)
        #expect(Timestamp.parse("1969-12-31T23:59:59.5Z") == -500)
    }

    @Test("the valid range is years 0001 through 9999")
    func validRangeBounds() {
        #expect(Timestamp.format(Timestamp.validRange.lowerBound) == "0001-01-01T00:00:00Z")
        #expect(Timestamp.format(Timestamp.validRange.upperBound) == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp.parse("0001-01-01T00:00:00+00:01") == nil)
        #expect(Timestamp.parse("9999-12-31T23:59:59-00:01") == nil)
        #expect(Timestamp.parse("0001-01-01T00:00:00-00:01") == Timestamp.validRange.lowerBound + 60_000)
    }

    @Test(
        "malformed or impossible date-times do not parse",
        arguments: [
            "", "2026", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00Z", "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-02-30T00:00:00Z",
            "2026-04-31T00:00:00Z", "2026-01-32T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z", "2025-12-31T23:59:60Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00,5Z",
            "2026-01-01T00:00:00+01", "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+01:60", "2026-01-01T00:00:00 Z", "2026-01-01T00:00:00ZZ", "2026-01-01T00:00:00Z ",
            " 2026-01-01T00:00:00Z", "2026-01-01X00:00:00Z", "2026/01/01T00:00:00Z", "20260101T000000Z",
            "0000-01-01T00:00:00Z", "+2026-01-01T00:00:00Z", "-2026-01-01T00:00:00Z", "10000-01-01T00:00:00Z",
            "2026-1-01T00:00:00Z", "2026-01-01T0:00:00Z", "２０２６-01-01T00:00:00Z", "2026-01-01T00:00:00UTC",
        ])
    func invalid(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test("format writes UTC, with milliseconds only when not zero")
    func formatShape() {
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.format(1) == "1970-01-01T00:00:00.001Z")
        #expect(Timestamp.format(-1) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp.format(-1_000) == "1969-12-31T23:59:59Z")
        #expect(Timestamp.format(951_782_400_000) == "2000-02-29T00:00:00Z")
        #expect(Timestamp.format(1_767_323_045_678) == "2026-01-02T03:04:05.678Z")
        #expect(Timestamp.format(1_767_323_045_600) == "2026-01-02T03:04:05.600Z")
        #expect(Timestamp.format(-62_135_596_800_000) == "0001-01-01T00:00:00Z")
    }

    @Test("parse(format(t)) == t over a seeded range of millis, including before 1970")
    func roundTripMillis() {
        var random = SplitMix64(seed: 0x7135_7A3F)
        var samples: [Int64] = [
            0, 1, -1, 999, -999, 1_000, -1_000, 86_399_999, -86_400_000, -86_400_001,
            Timestamp.validRange.lowerBound, Timestamp.validRange.upperBound,
        ]
        for _ in 0..<5_000 { samples.append(random.int64(in: Timestamp.validRange)) }
        // Near the epoch, where the sign of the remainder changes.
        for _ in 0..<2_000 { samples.append(random.int64(in: -400 * 86_400_000...400 * 86_400_000)) }
        for millis in samples {
            let text = Timestamp.format(millis)
            #expect(Timestamp.parse(text) == millis, "\(millis) → \(text)")
            #expect(text.hasSuffix("Z"))
        }
    }

    @Test("format(parse(s)) == s for canonical date-times, and offsets shift by their amount")
    func roundTripText() throws {
        var random = SplitMix64(seed: 0xDA7E_0001)
        for _ in 0..<2_000 {
            let year = random.int(in: 1...9999)
            let month = random.int(in: 1...12)
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
            let day = random.int(in: 1...days)
            let hour = random.int(in: 0...23)
            let minute = random.int(in: 0...59)
            let second = random.int(in: 0...59)
            let millis = random.chance(1, in: 2) ? 0 : random.int(in: 1...999)
            var text =
                "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
            if millis != 0 { text += "." + pad(millis, 3) }
            let utc = try #require(Timestamp.parse(text + "Z"), "\(text)Z")
            #expect(Timestamp.format(utc) == text + "Z")

            let offsetHours = random.int(in: 0...23)
            let offsetMinutes = random.int(in: 0...59)
            let sign = random.chance(1, in: 2) ? "+" : "-"
            let shifted = Timestamp.parse(text + "\(sign)\(pad(offsetHours, 2)):\(pad(offsetMinutes, 2))")
            let offset = Int64(offsetHours * 60 + offsetMinutes) * 60_000
            let expected = sign == "+" ? utc - offset : utc + offset
            if Timestamp.validRange.contains(expected) {
                #expect(shifted == expected, "\(text) \(sign)\(offsetHours):\(offsetMinutes)")
            } else {
                #expect(shifted == nil)
            }
        }
    }

    @Test("the calendar arithmetic agrees with Foundation's Gregorian calendar (1600–9999)")
    func agreesWithFoundation() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        var random = SplitMix64(seed: 0xF0_0DA7E)
        let start = try #require(Timestamp.parse("1600-01-01T00:00:00Z"))
        for _ in 0..<1_000 {
            let seconds = random.int64(in: (start / 1000)...(Timestamp.validRange.upperBound / 1000))
            let date = Date(timeIntervalSince1970: TimeInterval(seconds))
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
            let year = try #require(parts.year)
            let month = try #require(parts.month)
            let day = try #require(parts.day)
            let hour = try #require(parts.hour)
            let minute = try #require(parts.minute)
            let second = try #require(parts.second)
            let text =
                "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))Z"
            #expect(Timestamp.format(seconds * 1000) == text)
            #expect(Timestamp.parse(text) == seconds * 1000)
        }
    }
}

@Suite("DurationText: 30s, 15m, 24h, 7d, 500ms")
struct DurationTextTests {
    @Test(
        "durations parse to milliseconds",
        arguments: [
            ("30s", Int64(30_000)), ("15m", 900_000), ("24h", 86_400_000), ("7d", 604_800_000), ("500ms", 500),
            ("1ms", 1), ("1s", 1_000), ("90s", 90_000), ("1h", 3_600_000), ("0s", 0), ("007m", 420_000),
        ])
    func parse(text: String, millis: Int64) {
        #expect(DurationText.parse(text) == millis)
    }

    @Test(
        "malformed durations are rejected",
        arguments: [
            "", "5", "-5m", "5x", "m", "ms", "s", "5 m", " 5m", "5m ", "+5m", "1.5h", "5M", "5H", "5mm", "5sec", "h5",
            "٥m", "5m5s", "99999999999999999999d", "9223372036854775807d",
        ])
    func invalid(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test("format uses the largest whole unit")
    func format() {
        #expect(DurationText.format(604_800_000) == "7d")
        #expect(DurationText.format(86_400_000) == "1d")
        #expect(DurationText.format(7_200_000) == "2h")
        #expect(DurationText.format(900_000) == "15m")
        #expect(DurationText.format(90_000) == "90s")
        #expect(DurationText.format(30_000) == "30s")
        #expect(DurationText.format(1_500) == "1500ms")
        #expect(DurationText.format(500) == "500ms")
        #expect(DurationText.format(0) == "0ms")
    }

    @Test("parse(format(d)) == d over a seeded range")
    func roundTrip() {
        var random = SplitMix64(seed: 0xD0_0A7)
        let units: [Int64] = [1, 1_000, 60_000, 3_600_000, 86_400_000]
        for _ in 0..<2_000 {
            let millis = random.pick(units) * random.int64(in: 0...1_000_000)
            let text = DurationText.format(millis)
            #expect(DurationText.parse(text) == millis, "\(millis) → \(text)")
        }
    }
}
