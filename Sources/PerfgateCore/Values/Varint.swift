/// LEB128 variable-length integers, as protobuf writes them: seven bits a byte, low bits first.
/// Shared by the protobuf exposition and the store's exponential bucket blobs.
package enum Varint {
    /// Appends `value`.
    @inline(__always)
    package static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// Writes `value` at `position` of a buffer known to have room (10 bytes at most), moving past it.
    @inline(__always)
    package static func write(_ value: UInt64, to bytes: UnsafeMutableBufferPointer<UInt8>, at position: inout Int) {
        var rest = value
        while rest >= 0x80 {
            bytes[position] = UInt8(truncatingIfNeeded: rest) | 0x80
            position += 1
            rest >>= 7
        }
        bytes[position] = UInt8(rest)
        position += 1
    }

    /// How many bytes `value` takes.
    @inline(__always)
    package static func size(_ value: UInt64) -> Int {
        (64 - value.leadingZeroBitCount + 6) / 7 + (value == 0 ? 1 : 0)
    }

    /// Reads a value at `position`, moving past it; nil when the bytes end first or it runs
    /// past 64 bits.
    @inline(__always)
    package static func read(_ raw: UnsafeRawBufferPointer, _ position: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < raw.count, shift < 64 {
            let byte = raw[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }

    /// The zig-zag form of a signed value, so small negatives stay short.
    @inline(__always)
    package static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    /// A signed value from its zig-zag form.
    @inline(__always)
    package static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }
}
