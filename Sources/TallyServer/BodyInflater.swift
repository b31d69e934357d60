import CZlib

/// Why a compressed request body could not be inflated.
enum InflateError: Error, Sendable, Equatable {
    /// The inflated body would be larger than the limit, bytes.
    case tooLarge(limit: Int)
    /// Not a gzip or zlib stream, or a truncated one; zlib's message.
    case malformed(String)
}

/// Inflates `Content-Encoding: gzip` (or `deflate`, the zlib format) request bodies with the system zlib,
/// stopping as soon as the output passes the body size limit: a small compressed body cannot make the daemon
/// hold more than the limit (a "zip bomb" is refused with 413 after at most `limit` bytes).
enum BodyInflater {
    static func inflate(_ input: UnsafeRawBufferPointer, limit: Int) throws(InflateError) -> [UInt8] {
        guard input.count <= Int(UInt32.max) else { throw .tooLarge(limit: limit) }
        var stream = z_stream()
        guard tally_inflate_init(&stream) == Z_OK else { throw .malformed("zlib could not start") }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let status = chunk.withUnsafeMutableBufferPointer { buffer in
                stream.next_out = buffer.baseAddress
                stream.avail_out = uInt(buffer.count)
                return CZlib.inflate(&stream, Z_NO_FLUSH)
            }
            let produced = chunk.count - Int(stream.avail_out)
            guard output.count + produced <= limit else { throw .tooLarge(limit: limit) }
            output.append(contentsOf: chunk[0..<produced])
            switch status {
            case Z_STREAM_END:
                // gzip allows several members one after the other (RFC 1952 §2.2).
                guard stream.avail_in > 0 else { return output }
                guard inflateReset(&stream) == Z_OK else { throw .malformed("zlib could not restart") }
            case Z_OK:
                continue
            case Z_BUF_ERROR where stream.avail_in == 0:
                throw .malformed("the compressed body is truncated")
            case Z_BUF_ERROR:
                continue
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw .malformed(message)
            }
        }
    }
}
