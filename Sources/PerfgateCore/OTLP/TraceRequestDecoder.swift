/// An OTLP trace export, read: the spans perfgate can use, and those it refused with why.
package struct DecodedTraces: Sendable {
    /// The spans read, in body order.
    package var spans: [OTLPSpan] = []
    /// Spans refused as a whole (unusable ids), each with its place in the body and the reason.
    package var refused: [(place: String, reason: String)] = []

    /// Every span the body held.
    package var spanCount: Int { spans.count + refused.count }
}

/// Why an OTLP body was refused as a whole: it is not an export request at all, or holds too
/// many spans.
package struct TraceDecodingError: Error, Sendable {
    /// What was wrong, and where.
    package let message: String
    /// True when the body held more spans than one request may.
    package let tooManySpans: Bool

    init(_ message: String, tooManySpans: Bool = false) {
        self.message = message
        self.tooManySpans = tooManySpans
    }
}

/// Reads `ExportTraceServiceRequest` bodies, in OTLP's protobuf encoding or its JSON one, for
/// the fields perfgate uses (field numbers from opentelemetry-proto's collector/trace/v1,
/// trace/v1 and common/v1). Unknown fields are skipped, as both encodings require.
package enum TraceRequestDecoder {
    // MARK: Protobuf

    /// Reads a protobuf body of at most `maxSpans` spans.
    package static func protobuf(_ bytes: UnsafeBufferPointer<UInt8>, maxSpans: Int) throws(TraceDecodingError) -> DecodedTraces {
        var decoded = DecodedTraces()
        do {
            var request = ProtobufReader(bytes)
            var resourceIndex = 0
            while let (number, wireType) = try request.nextField() {
                guard number == 1 else { try request.skip(wireType); continue }
                try request.expect(.lengthDelimited, got: wireType, field: number, in: "ExportTraceServiceRequest")
                var resource = try request.message()
                var scopeIndex = 0
                while let (number, wireType) = try resource.nextField() {
                    guard number == 2 else { try resource.skip(wireType); continue }
                    try resource.expect(.lengthDelimited, got: wireType, field: number, in: "ResourceSpans")
                    var scope = try resource.message()
                    var spanIndex = 0
                    while let (number, wireType) = try scope.nextField() {
                        guard number == 2 else { try scope.skip(wireType); continue }
                        try scope.expect(.lengthDelimited, got: wireType, field: number, in: "ScopeSpans")
                        guard decoded.spanCount < maxSpans else {
                            throw TraceDecodingError("the body holds more than \(maxSpans) spans; send smaller exports", tooManySpans: true)
                        }
                        var spanReader = try scope.message()
                        switch try span(&spanReader) {
                        case .success(let read): decoded.spans.append(read)
                        case .failure(let reason):
                            decoded.refused.append((place(resourceIndex, scopeIndex, spanIndex), reason.message))
                        }
                        spanIndex += 1
                    }
                    scopeIndex += 1
                }
                resourceIndex += 1
            }
        } catch let error as ProtobufError {
            throw TraceDecodingError("the body is not an OTLP ExportTraceServiceRequest: \(error.message)")
        } catch let error as TraceDecodingError {
            throw error
        } catch {
            throw TraceDecodingError("\(error)")
        }
        return decoded
    }

    /// A span refused on its own; the rest of the body still counts.
    package struct SpanRefusal: Error {
        let message: String
    }

    /// One `Span` message: the span, or why it cannot be used.
    package static func span(_ reader: inout ProtobufReader) throws(ProtobufError) -> Result<OTLPSpan, SpanRefusal> {
        var traceID: TraceID?
        var traceIDBytes = 0
        var spanID: UInt64?
        var spanIDBytes = 0
        var parentBytes = 0
        var span = OTLPSpan(traceID: TraceID(high: 0, low: 0), spanID: 0)
        var flags: UInt32 = 0
        while let (number, wireType) = try reader.nextField() {
            switch number {
            case 1:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "Span")
                let bytes = try reader.bytesValue()
                traceIDBytes = bytes.count
                if bytes.count == 16 { traceID = TraceID(high: bigEndian(bytes, 0), low: bigEndian(bytes, 8)) }
            case 2:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "Span")
                let bytes = try reader.bytesValue()
                spanIDBytes = bytes.count
                if bytes.count == 8 { spanID = bigEndian(bytes, 0) }
            case 4:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "Span")
                let bytes = try reader.bytesValue()
                parentBytes = bytes.count
                if bytes.count == 8 { span.parentSpanID = bigEndian(bytes, 0) }
            case 5:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "Span")
                span.name = try reader.string()
            case 7:
                try reader.expect(.fixed64, got: wireType, field: number, in: "Span")
                span.startNanoseconds = try reader.fixed64()
            case 8:
                try reader.expect(.fixed64, got: wireType, field: number, in: "Span")
                span.endNanoseconds = try reader.fixed64()
            case 9:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "Span")
                var keyValue = try reader.message()
                try attribute(&keyValue, into: &span.attributes)
            case 16:
                try reader.expect(.fixed32, got: wireType, field: number, in: "Span")
                flags = try reader.fixed32()
            default:
                try reader.skip(wireType)
            }
        }
        span.parentIsRemote = flags & 0x300 == 0x300
        return checked(span, traceID: traceID, traceIDBytes: traceIDBytes, spanID: spanID, spanIDBytes: spanIDBytes, parentBytes: parentBytes)
    }

    /// A `KeyValue` whose key perfgate reads and whose value is a string, into `attributes`.
    private static func attribute(_ reader: inout ProtobufReader, into attributes: inout OTLPSpan.Attributes) throws(ProtobufError) {
        var key: OTLPSpan.Key?
        var value: String?
        while let (number, wireType) = try reader.nextField() {
            switch number {
            case 1:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "KeyValue")
                key = knownKey(try reader.bytesValue())
            case 2:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "KeyValue")
                var any = try reader.message()
                value = nil
                while let (number, wireType) = try any.nextField() {
                    if number == 1 {
                        try any.expect(.lengthDelimited, got: wireType, field: number, in: "AnyValue")
                        value = try any.string()
                    } else {
                        try any.skip(wireType)
                    }
                }
            default:
                try reader.skip(wireType)
            }
        }
        if let key, let value { attributes[key] = value }
    }

    /// The key `bytes` spell, compared without making a string of every attribute key.
    private static func knownKey(_ bytes: UnsafeBufferPointer<UInt8>) -> OTLPSpan.Key? {
        for (key, spelled) in keyBytes where spelled.count == bytes.count && spelled.elementsEqual(bytes) { return key }
        return nil
    }

    private static let keyBytes = OTLPSpan.Key.allCases.map { ($0, Array($0.name.utf8)) }

    private static func bigEndian(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in start..<(start + 8) { value = value << 8 | UInt64(bytes[index]) }
        return value
    }

    // MARK: JSON

    /// Reads an OTLP/JSON body of at most `maxSpans` spans. Field names are lowerCamelCase (the
    /// protobuf names are accepted too), ids are hex, 64-bit integers numbers or decimal strings.
    package static func json(_ bytes: [UInt8], maxSpans: Int) throws(TraceDecodingError) -> DecodedTraces {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw TraceDecodingError("the body is not JSON: \(error)")
        }
        guard case .object = document else { throw TraceDecodingError("the body must be a JSON object with resourceSpans") }
        var decoded = DecodedTraces()
        for (resourceIndex, resource) in try list(document, "resourceSpans", "resource_spans", at: "").enumerated() {
            let resourcePath = "resourceSpans[\(resourceIndex)]"
            for (scopeIndex, scope) in try list(resource, "scopeSpans", "scope_spans", at: resourcePath).enumerated() {
                let scopePath = "\(resourcePath).scopeSpans[\(scopeIndex)]"
                for (spanIndex, value) in try list(scope, "spans", "spans", at: scopePath).enumerated() {
                    guard decoded.spanCount < maxSpans else {
                        throw TraceDecodingError("the body holds more than \(maxSpans) spans; send smaller exports", tooManySpans: true)
                    }
                    let path = "\(scopePath).spans[\(spanIndex)]"
                    switch try span(json: value, at: path) {
                    case .success(let read): decoded.spans.append(read)
                    case .failure(let reason): decoded.refused.append((place(resourceIndex, scopeIndex, spanIndex), reason.message))
                    }
                }
            }
        }
        return decoded
    }

    /// The array under `name` (or its protobuf spelling); absent or null is empty.
    private static func list(_ value: JSONValue, _ name: String, _ protoName: String, at path: String) throws(TraceDecodingError) -> [JSONValue] {
        guard case .object = value else { throw TraceDecodingError("\(path.isEmpty ? "the body" : path) must be an object") }
        guard let member = value[name] ?? value[protoName], member != .null else { return [] }
        guard let elements = member.arrayValue else {
            throw TraceDecodingError("\(path.isEmpty ? "" : path + ".")\(name) must be an array")
        }
        return elements
    }

    private static func span(json value: JSONValue, at path: String) throws(TraceDecodingError) -> Result<OTLPSpan, SpanRefusal> {
        guard case .object = value else { throw TraceDecodingError("\(path) must be an object") }
        func member(_ name: String, _ protoName: String) -> JSONValue? {
            guard let found = value[name] ?? value[protoName], found != .null else { return nil }
            return found
        }
        /// An id's 64-bit halves; nil when absent, `[]` when its text is not `digits` hex digits.
        func id(_ name: String, _ protoName: String, digits: Int) throws(TraceDecodingError) -> [UInt64]? {
            guard let found = member(name, protoName) else { return nil }
            guard let text = found.stringValue else { throw TraceDecodingError("\(path).\(name) must be a string of hex digits") }
            let utf8 = Array(text.utf8)
            guard utf8.count == digits else { return [] }
            var halves: [UInt64] = []
            for start in stride(from: 0, to: digits, by: 16) {
                guard let half = Hex.value(String(decoding: utf8[start..<(start + 16)], as: UTF8.self)) else { return [] }
                halves.append(half)
            }
            return halves
        }
        func number(_ name: String, _ protoName: String, max: UInt64, strings: Bool) throws(TraceDecodingError) -> UInt64? {
            guard let found = member(name, protoName) else { return nil }
            let problem = TraceDecodingError(
                "\(path).\(name) must be a whole number from 0 to \(max)\(strings ? ", or a string of at most 19 digits" : "")"
            )
            switch found {
            case .string(let text) where strings:
                guard (1...19).contains(text.utf8.count), text.utf8.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }), let parsed = UInt64(text) else { throw problem }
                return parsed
            case .number(let text):
                // Exact when written as an integer; otherwise any number with no fraction, as JSON allows.
                if let parsed = UInt64(text), parsed <= max { return parsed }
                guard let double = Double(text), double >= 0, double < 18_446_744_073_709_551_616.0, let parsed = UInt64(exactly: double), parsed <= max else {
                    throw problem
                }
                return parsed
            default:
                throw problem
            }
        }

        let traceID = try id("traceId", "trace_id", digits: 32)
        let spanID = try id("spanId", "span_id", digits: 16)
        let parent = try id("parentSpanId", "parent_span_id", digits: 16)
        var span = OTLPSpan(traceID: TraceID(high: 0, low: 0), spanID: 0)
        if let name = member("name", "name") {
            guard let text = name.stringValue else { throw TraceDecodingError("\(path).name must be a string") }
            span.name = text
        }
        span.startNanoseconds = try number("startTimeUnixNano", "start_time_unix_nano", max: .max, strings: true) ?? 0
        span.endNanoseconds = try number("endTimeUnixNano", "end_time_unix_nano", max: .max, strings: true) ?? 0
        if let flags = try number("flags", "flags", max: UInt64(UInt32.max), strings: false) {
            span.parentIsRemote = flags & 0x300 == 0x300
        }
        if let attributes = member("attributes", "attributes") {
            guard let list = attributes.arrayValue else { throw TraceDecodingError("\(path).attributes must be an array") }
            for (index, pair) in list.enumerated() {
                guard case .object = pair, let keyText = pair["key"]?.stringValue else {
                    throw TraceDecodingError("\(path).attributes[\(index)] must be an object with a string key")
                }
                let anyValue = pair["value"] ?? .null
                guard anyValue == .null || anyValue.objectMembers != nil else {
                    throw TraceDecodingError("\(path).attributes[\(index)].value must be an object such as {\"stringValue\": \"…\"}")
                }
                guard let key = OTLPSpan.Key(name: keyText) else { continue }
                if let text = anyValue["stringValue"]?.stringValue ?? anyValue["string_value"]?.stringValue {
                    span.attributes[key] = text
                }
            }
        }
        func bytes(_ halves: [UInt64]?) -> Int { halves.map { $0.isEmpty ? -1 : $0.count * 8 } ?? 0 }
        span.parentSpanID = parent?.first ?? 0
        return checked(
            span, traceID: traceID.flatMap { $0.count == 2 ? TraceID(high: $0[0], low: $0[1]) : nil }, traceIDBytes: bytes(traceID),
            spanID: spanID?.first, spanIDBytes: bytes(spanID), parentBytes: bytes(parent)
        )
    }

    // MARK: Both

    /// The span with its ids in place, or why it cannot be used. A byte count of -1 stands for a
    /// JSON id that is not hex of the right length.
    private static func checked(
        _ span: OTLPSpan, traceID: TraceID?, traceIDBytes: Int, spanID: UInt64?, spanIDBytes: Int, parentBytes: Int
    ) -> Result<OTLPSpan, SpanRefusal> {
        guard let traceID, !traceID.isZero else {
            return .failure(SpanRefusal(message: "trace id must be 16 bytes (32 hex digits), not all zero (got \(describe(traceIDBytes)))"))
        }
        guard let spanID, spanID != 0 else {
            return .failure(SpanRefusal(message: "span id must be 8 bytes (16 hex digits), not all zero (got \(describe(spanIDBytes)))"))
        }
        guard parentBytes == 0 || parentBytes == 8 else {
            return .failure(SpanRefusal(message: "parent span id must be empty or 8 bytes (16 hex digits) (got \(describe(parentBytes)))"))
        }
        var span = span
        span.traceID = traceID
        span.spanID = spanID
        return .success(span)
    }

    private static func describe(_ bytes: Int) -> String {
        bytes < 0 ? "text of another length, or not hex" : bytes == 0 ? "none" : "\(bytes) bytes"
    }

    private static func place(_ resource: Int, _ scope: Int, _ span: Int) -> String {
        "resourceSpans[\(resource)].scopeSpans[\(scope)].spans[\(span)]"
    }
}
