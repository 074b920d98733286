import CZlib
import NIOCore

/// gzip for request bodies (bounded inflate) and for `/metrics` responses.
enum Gzip {
    /// Why a body could not be inflated.
    enum InflateError: Error, Equatable {
        /// The inflated body would exceed the limit; inflating stopped there.
        case tooLarge(limit: Int)
        /// The bytes are not valid gzip (or zlib) data.
        case invalid(String)
        /// `take` refused the memory the next piece needed; inflating stopped there.
        case refused
    }

    /// Inflates gzip (or zlib) data, refusing to produce more than `limit` bytes, and asking
    /// `take` for the memory of each piece before keeping it.
    ///
    /// Inflating stops as soon as the limit is passed or `take` says no, so a small "gzip bomb"
    /// costs at most `limit` bytes of memory. Concatenated gzip members are inflated one after another.
    static func inflate(_ input: UnsafeRawBufferPointer, limit: Int, take: (Int) -> Bool = { _ in true }) throws(InflateError) -> [UInt8] {
        var stream = z_stream()
        // 15 + 32: the largest window, and detect gzip or zlib headers automatically.
        guard inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .invalid("zlib could not start")
        }
        defer { inflateEnd(&stream) }
        guard let base = input.baseAddress?.assumingMemoryBound(to: UInt8.self), !input.isEmpty else {
            throw .invalid("the body is empty")
        }
        stream.next_in = UnsafeMutablePointer(mutating: base)
        stream.avail_in = UInt32(input.count)

        var output: [UInt8] = []
        let chunkSize = 64 * 1024
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let (status, produced) = chunk.withUnsafeMutableBufferPointer { buffer -> (Int32, Int) in
                stream.next_out = buffer.baseAddress
                stream.avail_out = UInt32(chunkSize)
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                return (status, chunkSize - Int(stream.avail_out))
            }
            if output.count + produced > limit { throw .tooLarge(limit: limit) }
            guard take(produced) else { throw .refused }
            output.append(contentsOf: chunk[0..<produced])
            switch status {
            case Z_STREAM_END:
                // Another gzip member may follow the first.
                guard stream.avail_in > 0 else { return output }
                guard inflateReset(&stream) == Z_OK else { throw .invalid("zlib could not restart") }
            case Z_OK:
                continue
            case Z_BUF_ERROR where stream.avail_in == 0:
                throw .invalid("the gzip data ends early (truncated body?)")
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw .invalid("the body is not valid gzip data: \(reason)")
            }
        }
    }

    /// Compresses `input` as one gzip member, into a buffer ready to send.
    static func deflate(_ input: UnsafeRawBufferPointer, level: Int32 = 6) -> ByteBuffer {
        var stream = z_stream()
        // 15 + 16: the largest window, with a gzip header and trailer.
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            preconditionFailure("zlib deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, UInt(input.count)))
        var output = ByteBufferAllocator().buffer(capacity: bound)
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { destination in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = UInt32(input.count)
            stream.next_out = destination.baseAddress?.assumingMemoryBound(to: UInt8.self)
            stream.avail_out = UInt32(bound)
            let status = CZlib.deflate(&stream, Z_FINISH)
            precondition(status == Z_STREAM_END, "deflateBound leaves room for the whole stream")
            return bound - Int(stream.avail_out)
        }
        return output
    }
}
