import Foundation
import TallyCore

/// The event mix `tally bench` posts: contacts drawn from a Zipf distribution (a few very active contacts, a
/// long tail), every behaviour type, url hits in browser sessions on pages the example rules watch, event times
/// moving forward, and an idempotency `id` on the events a site's back end would send (downloads, forms, mail).
///
/// Deterministic for a seed, so two runs post the same events. Lines are generated once, before the clock
/// starts; ``IdempotencyKeys`` renumbers their ids for every request, so a reused body is never a duplicate.
struct Workload {
    /// The Zipf exponent of the contact distribution.
    static let exponent = 1.0
    /// Event time of the first event: 2026-03-15T00:00:00Z, inside the example rules' spring campaign.
    static let start: Int64 = 1_773_532_800_000

    private let cumulative: [Double]
    private var random: SplitMix64
    private var at: Int64

    /// A workload over `contacts` distinct contacts.
    init(contacts: Int, seed: UInt64) {
        var weights = [Double](repeating: 0, count: max(contacts, 1))
        var sum = 0.0
        for rank in weights.indices {
            sum += 1 / pow(Double(rank + 1), Self.exponent)
            weights[rank] = sum
        }
        cumulative = weights.map { $0 / sum }
        random = SplitMix64(seed: seed)
        at = Self.start
    }

    /// A contact's rank (its id is `c-RANK`), most often one of the first.
    mutating func contact() -> Int {
        let u = Double(random.next() >> 11) / Double(1 << 53)
        var (low, high) = (0, cumulative.count - 1)
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] < u { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Appends one NDJSON line (with its newline) to `body`; when the event carries an `id`, the offset of its
    /// 16 digits is appended to `idOffsets`.
    mutating func line(into body: inout [UInt8], idOffsets: inout [Int]) {
        let contact = contact()
        at += Int64(random.next() % 200)
        var text = #"{"contact":"c-\#(contact)","at":\#(at),"#
        let roll = random.next() % 100
        var withID = false
        switch roll {
        case 0..<45:
            let page: String
            switch random.next() % 20 {
            case 0..<3: page = "pricing"
            case 3: page = "pricing/enterprise"
            case 4..<14: page = "blog/post-\(random.next() % 50)"
            default: page = "docs/\(random.next() % 30)"
            }
            let session = "s-\(contact)-\(at / 3_600_000)"
            text += #""type":"url.hit","url":"https://www.example.com/\#(page)","session":"\#(session)""#
        case 45..<60:
            text += #""type":"email.send","item":"newsletter-\#(at / 604_800_000 % 12)""#
            withID = true
        case 60..<72:
            let item = random.chance(1, in: 10) ? "spring-2026" : "newsletter-\(at / 604_800_000 % 12)"
            text += #""type":"email.open","item":"\#(item)""#
        case 72..<84:
            text += #""type":"page.hit","item":"landing-\#(random.next() % 8)""#
        case 84..<94:
            let item = random.pick(["pricing-whitepaper", "roi-guide", "ebook-1", "ebook-2", "ebook-3"])
            text += #""type":"asset.download","item":"\#(item)""#
            withID = true
        default:
            let item = random.chance(3, in: 10) ? "demo-request" : "contact-us"
            text += #""type":"form.submit","item":"\#(item)""#
            withID = true
        }
        if withID {
            text += #","id":""#
            body += text.utf8
            idOffsets.append(body.count)
            body += Array(repeating: UInt8(ascii: "0"), count: IdempotencyKeys.width)
            body += #""}"#.utf8
        } else {
            body += text.utf8
            body.append(UInt8(ascii: "}"))
        }
        body.append(UInt8(ascii: "\n"))
    }
}

/// Gives the `id`s of a pre-generated body fresh values before each request: the run's seed in the first 4 hex
/// digits, the client in the next 4, a counter in the other 8, so ids never repeat across requests, clients or
/// runs with different seeds.
struct IdempotencyKeys {
    static let width = 16
    private var next: UInt64

    init(seed: UInt64, client: Int) {
        next = (seed & 0xFFFF) << 48 | UInt64(client & 0xFFFF) << 32
    }

    mutating func renumber(_ body: inout [UInt8], at offsets: [Int]) {
        let digits = Array("0123456789abcdef".utf8)
        body.withUnsafeMutableBufferPointer { bytes in
            for offset in offsets {
                var value = next
                next += 1
                for position in stride(from: offset + Self.width - 1, through: offset, by: -1) {
                    bytes[position] = digits[Int(value & 15)]
                    value >>= 4
                }
            }
        }
    }
}
