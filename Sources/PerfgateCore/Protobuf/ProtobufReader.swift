/// Why a protobuf body could not be read, and at which byte.
package struct ProtobufError: Error, Equatable, Sendable {
    /// What was wrong, naming the byte offset in the body.
    package let message: String

    init(_ problem: String, at offset: Int) {
        message = "\(problem) at byte \(offset)"
    }
}

/// Reads protobuf's wire format field by field from bytes it does not copy; every read is
/// checked against the end of its message, so a truncated or lying body is an error, never a
/// read past the buffer.
///
/// Groups (wire types 3 and 4) are refused: OTLP never uses them, and skipping one means
/// scanning for its end, where a hostile body could nest them without bound.
package struct ProtobufReader {
    /// The wire types: how a field's value is laid out.
    package enum WireType: UInt8, Sendable {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5

        var name: String {
            switch self {
            case .varint: "varint"
            case .fixed64: "fixed64"
            case .lengthDelimited: "length-delimited"
            case .fixed32: "fixed32"
            }
        }
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    /// The offset of the next byte to read, from the start of the body.
    package private(set) var offset: Int
    private let end: Int

    /// A reader over the whole of `bytes`.
    package init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.init(bytes, from: 0, to: bytes.count)
    }

    private init(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) {
        self.bytes = bytes
        self.offset = start
        self.end = end
    }

    /// True when the message has no bytes left.
    package var isAtEnd: Bool { offset >= end }

    /// The next field's number and wire type, or nil at the end of the message.
    package mutating func nextField() throws(ProtobufError) -> (number: UInt32, wireType: WireType)? {
        guard !isAtEnd else { return nil }
        let start = offset
        let key = try varint()
        let number = key >> 3
        guard number >= 1, number <= 536_870_911 else { throw ProtobufError("field number \(number) is out of range", at: start) }
        guard let wireType = WireType(rawValue: UInt8(key & 7)) else {
            throw ProtobufError("field \(number) has wire type \(key & 7), which OTLP does not use", at: start)
        }
        return (UInt32(number), wireType)
    }

    /// A varint of at most ten bytes.
    package mutating func varint() throws(ProtobufError) -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw ProtobufError("the message ends inside a varint", at: start) }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw ProtobufError("a varint is longer than 64 bits", at: start) }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    /// Eight little-endian bytes.
    package mutating func fixed64() throws(ProtobufError) -> UInt64 {
        try littleEndian(UInt64.self, "fixed64")
    }

    /// Four little-endian bytes.
    package mutating func fixed32() throws(ProtobufError) -> UInt32 {
        try littleEndian(UInt32.self, "fixed32")
    }

    private mutating func littleEndian<T: FixedWidthInteger>(_: T.Type, _ name: String) throws(ProtobufError) -> T {
        let size = T.bitWidth / 8
        guard end - offset >= size else { throw ProtobufError("the message ends inside a \(name) value", at: offset) }
        var value: T = 0
        for index in 0..<size { value |= T(bytes[offset + index]) << (8 * index) }
        offset += size
        return value
    }

    /// A length-delimited value's bytes, as a reader of their own (an embedded message).
    package mutating func message() throws(ProtobufError) -> ProtobufReader {
        let range = try lengthDelimited()
        return ProtobufReader(bytes, from: range.lowerBound, to: range.upperBound)
    }

    /// A length-delimited value's bytes.
    package mutating func bytesValue() throws(ProtobufError) -> UnsafeBufferPointer<UInt8> {
        let range = try lengthDelimited()
        return UnsafeBufferPointer(rebasing: bytes[range])
    }

    /// A length-delimited value read as UTF-8 text; invalid UTF-8 is an error, as protobuf's
    /// `string` requires.
    package mutating func string() throws(ProtobufError) -> String {
        let start = offset
        let value = try bytesValue()
        guard let text = String(validating: value, as: UTF8.self) else {
            throw ProtobufError("a string field is not valid UTF-8", at: start)
        }
        return text
    }

    /// Passes over a field's value of `wireType`.
    package mutating func skip(_ wireType: WireType) throws(ProtobufError) {
        switch wireType {
        case .varint: _ = try varint()
        case .fixed64: _ = try fixed64()
        case .fixed32: _ = try fixed32()
        case .lengthDelimited: _ = try lengthDelimited()
        }
    }

    /// Checks that field `number` came with the wire type its schema gives it.
    package func expect(_ wireType: WireType, got actual: WireType, field number: UInt32, in message: String) throws(ProtobufError) {
        guard actual == wireType else {
            throw ProtobufError("\(message) field \(number) must be \(wireType.name), got \(actual.name)", at: offset)
        }
    }

    private mutating func lengthDelimited() throws(ProtobufError) -> Range<Int> {
        let start = offset
        let length = try varint()
        guard length <= UInt64(end - offset) else {
            throw ProtobufError("a length of \(length) bytes runs past the end of its message (\(end - offset) bytes left)", at: start)
        }
        let range = offset..<(offset + Int(length))
        offset = range.upperBound
        return range
    }
}
