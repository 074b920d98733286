/// Writes protobuf's wire format field by field, appending to a byte array.
package enum ProtobufWriter {
    /// A field's key: its number and wire type.
    package static func tag(_ field: Int, _ wireType: ProtobufReader.WireType, into out: inout [UInt8]) {
        Varint.append(UInt64(field) << 3 | UInt64(wireType.rawValue), to: &out)
    }

    /// A varint field (`uint64`, `int64`, `int32`, `bool`, enums).
    package static func varint(_ field: Int, _ value: UInt64, into out: inout [UInt8]) {
        tag(field, .varint, into: &out)
        Varint.append(value, to: &out)
    }

    /// A zig-zag varint field (`sint64`).
    package static func sint64(_ field: Int, _ value: Int64, into out: inout [UInt8]) {
        varint(field, Varint.zigzag(value), into: &out)
    }

    /// A `double` field.
    package static func double(_ field: Int, _ value: Double, into out: inout [UInt8]) {
        fixed64(field, value.bitPattern, into: &out)
    }

    /// A `fixed64` field.
    package static func fixed64(_ field: Int, _ value: UInt64, into out: inout [UInt8]) {
        tag(field, .fixed64, into: &out)
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    /// A `fixed32` field.
    package static func fixed32(_ field: Int, _ value: UInt32, into out: inout [UInt8]) {
        tag(field, .fixed32, into: &out)
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    /// A `string` field.
    package static func string(_ field: Int, _ value: String, into out: inout [UInt8]) {
        bytes(field, Array(value.utf8), into: &out)
    }

    /// A `bytes` field, or an embedded message already written.
    package static func bytes(_ field: Int, _ value: [UInt8], into out: inout [UInt8]) {
        tag(field, .lengthDelimited, into: &out)
        Varint.append(UInt64(value.count), to: &out)
        out.append(contentsOf: value)
    }
}
