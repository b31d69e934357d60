import Testing

@testable import TallyCore

@Suite("URLPattern: url.hit patterns (U1)")
struct URLPatternTests {
    struct Example: Sendable, CustomTestStringConvertible {
        let pattern: String
        let url: String
        let matches: Bool
        let why: String

        var testDescription: String { "\(why): \(pattern) \(matches ? "matches" : "does not match") \(url)" }
    }

    static let examples: [Example] = [
        Example(pattern: "https://x.com/page", url: "https://x.com/page", matches: true, why: "exact URL"),
        Example(pattern: "https://x.com/page", url: "https://x.com/other", matches: false, why: "other URL"),
        Example(pattern: "https://x.com/page", url: "https://x.com/pages", matches: false, why: "anchored at the end"),
        Example(pattern: "https://x.com/page", url: "https://x.com/pag", matches: false, why: "shorter URL"),
        Example(
            pattern: "https://x.com/page", url: "https://evil.com/?https://x.com/page", matches: false,
            why: "anchored at the start"),
        Example(pattern: "https://x.com/page", url: "http://x.com/page", matches: false, why: "scheme is literal"),
        Example(pattern: "https://x.com/help*", url: "https://x.com/help/a?utm=1", matches: true, why: "spec example"),
        Example(pattern: "https://x.com/help*", url: "https://x.com/help", matches: true, why: "* matches nothing"),
        Example(pattern: "https://x.com/help*", url: "https://x.com/helpdesk", matches: true, why: "* matches a run"),
        Example(pattern: "https://x.com/help*", url: "https://x.com/hel", matches: false, why: "prefix missing"),
        Example(pattern: "https://x.com/page", url: "https://x.com/page/?utm=1", matches: true, why: "spec example"),
        Example(pattern: "https://X.COM/Page", url: "https://x.com/PAGE", matches: true, why: "case-insensitive"),
        Example(pattern: "HTTPS://x.com/help*", url: "https://X.com/HELP/Me", matches: true, why: "case-insensitive"),
        Example(
            pattern: "https://x.com/page/", url: "https://x.com/page", matches: true, why: "trailing slash, pattern"),
        Example(pattern: "https://x.com/page", url: "https://x.com/page/", matches: true, why: "trailing slash, URL"),
        Example(pattern: "https://x.com/page/", url: "https://x.com/page/", matches: true, why: "trailing slash, both"),
        Example(pattern: "https://x.com/page", url: "https://x.com/page?a=1", matches: true, why: "query dropped"),
        Example(pattern: "https://x.com/page", url: "https://x.com/page#top", matches: true, why: "fragment dropped"),
        Example(
            pattern: "https://x.com/page", url: "https://x.com/page?a=1&b=/x/#top", matches: true,
            why: "query and fragment dropped"),
        Example(
            pattern: "https://x.com/page*", url: "https://x.com/?next=/page", matches: false,
            why: "a dropped query cannot match"),
        Example(pattern: "https://x.com/page?a=1", url: "https://x.com/page?a=1", matches: true, why: "query kept"),
        Example(pattern: "https://x.com/page?a=1", url: "https://x.com/page?a=2", matches: false, why: "query kept"),
        Example(pattern: "https://x.com/page?a=1", url: "https://x.com/page", matches: false, why: "query kept"),
        Example(
            pattern: "https://x.com/page?a=1", url: "https://x.com/page?a=1&b=2", matches: false,
            why: "query kept, anchored"),
        Example(
            pattern: "https://x.com/page?A=1", url: "https://x.com/page?a=1", matches: true, why: "query ignores case"),
        Example(pattern: "https://x.com/page?*", url: "https://x.com/page?utm=1", matches: true, why: "query wildcard"),
        Example(pattern: "https://x.com/page?*", url: "https://x.com/page", matches: false, why: "? is literal"),
        Example(
            pattern: "https://x.com/*?q=*", url: "https://x.com/a/b?q=tally#r", matches: true,
            why: "query and fragment kept"),
        Example(pattern: "https://x.com/a?c", url: "https://x.com/abc", matches: false, why: "? is not a wildcard"),
        Example(pattern: "https://x.com/a.c", url: "https://x.com/abc", matches: false, why: ". is literal"),
        Example(pattern: "https://x.com/[ab]", url: "https://x.com/a", matches: false, why: "[ is literal"),
        Example(pattern: "https://x.com/[ab]", url: "https://x.com/[ab]", matches: true, why: "[ is literal"),
        Example(pattern: "https://x.com/a+b", url: "https://x.com/a+b", matches: true, why: "+ is literal"),
        Example(pattern: "https://x.com/*/end", url: "https://x.com/a/b/c/end", matches: true, why: "* crosses /"),
        Example(pattern: "https://*.x.com/*", url: "https://www.x.com/a/b", matches: true, why: "* in the host"),
        Example(pattern: "https://x.com/p*b=2?x", url: "https://x.com/p?a=1&b=2?x", matches: true, why: "* crosses ?"),
        Example(pattern: "https://x.com/*c", url: "https://x.com/a?b/c", matches: false, why: "query dropped first"),
        Example(pattern: "https://x.com/*c?", url: "https://x.com/ab?c/c?", matches: true, why: "* crosses ? and /"),
        Example(pattern: "*", url: "https://x.com/a?b#c", matches: true, why: "* alone"),
        Example(pattern: "*", url: "", matches: true, why: "* alone"),
        Example(pattern: "**", url: "https://x.com/", matches: true, why: "stars collapse"),
        Example(
            pattern: "https://x.com/*a*a*a*b", url: "https://x.com/aaaaaaaaaaaaaaaa", matches: false,
            why: "backtracking"),
        Example(
            pattern: "https://x.com/*a*a*a*b", url: "https://x.com/aaaaaaaaaaab", matches: true, why: "backtracking"),
        Example(pattern: "https://x.com/café", url: "https://x.com/CAFÉ", matches: true, why: "non-ASCII case"),
    ]

    @Test("U1 examples", arguments: examples)
    func example(_ example: Example) {
        #expect(URLPattern(example.pattern).matches(example.url) == example.matches)
    }

    @Test("U1 the pattern keeps its text")
    func text() {
        #expect(URLPattern("https://X.com/Help*").text == "https://X.com/Help*")
        #expect(URLPattern("https://X.com/Help*").description == "https://X.com/Help*")
        #expect(URLPattern("https://x.com/a") == URLPattern("https://x.com/a"))
    }

    @Test("U1 a pattern equal to the URL (normalized) always matches; * alone matches everything")
    func properties() throws {
        var random = SplitMix64(seed: 0x0_0451_A11)
        let pathChars = Array("abcXYZ019-._~%/:@!$&'()+,;=é*")
        let queryChars = Array("abcXYZ019-._~%/?:@!$&'()*+,;=é")
        for _ in 0..<3_000 {
            let scheme = random.pick(["http", "https", "HTTPS", "ftp"])
            let host = String((0..<random.int(in: 1...12)).map { _ in random.pick(Array("abcdefxyzABC0123456789-.")) })
            var path = ""
            for _ in 0..<random.int(in: 0...6) { path.append(random.pick(pathChars)) }
            while path.hasSuffix("/") { path.removeLast() }
            // At most one trailing slash: the rule ignores one on each side.
            var base = "\(scheme)://\(host)/\(path)"
            if !path.isEmpty, random.chance(1, in: 3) { base += "/" }
            var url = base
            if random.chance(1, in: 2) {
                url += "?" + String((0..<random.int(in: 0...10)).map { _ in random.pick(queryChars) })
            }
            if random.chance(1, in: 3) {
                url += "#" + String((0..<random.int(in: 0...6)).map { _ in random.pick(queryChars) })
            }
            let strippedBase = base.hasSuffix("/") ? String(base.dropLast()) : base

            // The URL without its query and fragment, in any case and with or without a trailing slash.
            for pattern in [base, strippedBase, strippedBase + "/", base.uppercased(), base.lowercased()] {
                #expect(URLPattern(pattern).matches(url), "\(pattern) vs \(url)")
            }
            // The whole URL, when it has a query (the query is then kept on both sides).
            if url.contains("?") {
                #expect(URLPattern(url).matches(url), "\(url) vs itself")
            }
            // Any prefix followed by *.
            let cut = random.int(in: 0...strippedBase.count)
            let prefix = String(strippedBase.prefix(cut))
            if !prefix.contains("?") {
                #expect(URLPattern(prefix + "*").matches(url), "\(prefix)* vs \(url)")
            }
            // * alone, and * for any run inside the pattern.
            #expect(URLPattern("*").matches(url))
            #expect(URLPattern("\(scheme)://*/\(path)").matches(url), "wildcard host vs \(url)")
            // Something the URL does not end with never matches.
            #expect(!URLPattern(strippedBase + "-not-there").matches(url), "\(strippedBase)-not-there vs \(url)")
        }
        // * alone matches any text at all, URL or not.
        for _ in 0..<500 {
            let scalars = (0..<random.int(in: 0...20)).compactMap { _ in
                Unicode.Scalar(UInt32(random.int(in: 0x20...0x2FFF)))
            }
            let text = String(String.UnicodeScalarView(scalars))
            #expect(URLPattern("*").matches(text), "\(text.debugDescription)")
        }
    }

    @Test("U1 an ASCII URL matched in place (no copy) agrees with the match of its normalised copy")
    func inPlaceMatchesCopy() {
        var random = SplitMix64(seed: 0x0_0451_A12)
        let chars = Array("abAB/?#*.-é")
        func text(_ range: ClosedRange<Int>) -> String {
            String((0..<random.int(in: range)).map { _ in random.pick(chars) })
        }
        var matched = 0
        for _ in 0..<20_000 {
            let pattern = URLPattern("h://" + text(0...6))
            let url = "h://" + text(0...8).filter { $0 != "é" }
            let inPlace = pattern.matches(url)
            #expect(inPlace == pattern.matchesNormalizedCopy(url), "\(pattern) vs \(url)")
            if inPlace { matched += 1 }
        }
        #expect(matched > 1_000, "the generator makes matches, not only misses")
    }

    @Test(
        "isAbsolute requires scheme://",
        arguments: [
            ("https://x.com", true), ("http://x", true), ("HTTPS://X.COM/a", true), ("ftp://host/file", true),
            ("git+ssh://host/repo", true), ("a.b-c+d://x", true), ("x://", true), ("h2://x", true),
            ("", false), ("x.com/page", false), ("/relative/path", false), ("//x.com/a", false),
            ("mailto:a@b.c", false), ("https:/x.com", false), ("https//x.com", false), ("https:x.com", false),
            ("1http://x", false), ("-http://x", false), ("ht tp://x", false), ("://x.com", false), ("https", false),
            ("é://x", false), ("htt_p://x", false), (" https://x.com", false),
        ])
    func isAbsolute(url: String, absolute: Bool) {
        #expect(URLPattern.isAbsolute(url) == absolute)
    }
}
