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

    /// Reads a protobuf body of at most `maxSpans` spans, keeping at most `keptValueBytes` of
    /// each attribute value (`OTLPSpan.keptValueBytes`).
    package static func protobuf(_ bytes: UnsafeBufferPointer<UInt8>, maxSpans: Int, keptValueBytes: Int) throws(TraceDecodingError) -> DecodedTraces {
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
                        switch try span(&spanReader, keptValueBytes: keptValueBytes) {
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
    package static func span(_ reader: inout ProtobufReader, keptValueBytes: Int) throws(ProtobufError) -> Result<OTLPSpan, SpanRefusal> {
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
                span.name = OTLPSpan.seedStageName(try reader.bytesValue()) ?? ""
            case 6:
                try reader.expect(.varint, got: wireType, field: number, in: "Span")
                span.kind = OTLPSpan.Kind(number: try reader.varint())
            case 7:
                try reader.expect(.fixed64, got: wireType, field: number, in: "Span")
                span.startNanoseconds = try reader.fixed64()
            case 8:
                try reader.expect(.fixed64, got: wireType, field: number, in: "Span")
                span.endNanoseconds = try reader.fixed64()
            case 9:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "Span")
                var keyValue = try reader.message()
                try attribute(&keyValue, into: &span, keptValueBytes: keptValueBytes)
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

    /// A `KeyValue` whose key perfgate reads, into `span`: strings cut to `keptValueBytes`,
    /// the first chunk's time as a double (or integer) of seconds, the stream flag as a bool.
    private static func attribute(_ reader: inout ProtobufReader, into span: inout OTLPSpan, keptValueBytes: Int) throws(ProtobufError) {
        var key: Known?
        var any: ProtobufReader?
        while let (number, wireType) = try reader.nextField() {
            switch number {
            case 1:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "KeyValue")
                key = knownKey(try reader.bytesValue())
            case 2:
                try reader.expect(.lengthDelimited, got: wireType, field: number, in: "KeyValue")
                any = try reader.message()
            default:
                try reader.skip(wireType)
            }
        }
        guard let key, var any else { return }
        // AnyValue: string 1, bool 2, int 3, double 4; the last one written wins, as protobuf's oneof.
        var text: UnsafeBufferPointer<UInt8>?
        var textOffset = 0
        var flag: Bool?
        var seconds: Double?
        while let (number, wireType) = try any.nextField() {
            switch (number, wireType) {
            case (1, .lengthDelimited): textOffset = any.offset; text = try any.bytesValue(); flag = nil; seconds = nil
            case (2, .varint): flag = try any.varint() != 0; text = nil; seconds = nil
            case (3, .varint): seconds = Double(Int64(bitPattern: try any.varint())); text = nil; flag = nil
            case (4, .fixed64): seconds = Double(bitPattern: try any.fixed64()); text = nil; flag = nil
            default: try any.skip(wireType)
            }
        }
        switch key {
        case .string(let key):
            guard let text else { return }
            let kept = OTLPSpan.cut(text, to: keptValueBytes)
            guard let value = String(validating: kept, as: UTF8.self) else {
                throw ProtobufError("a string field is not valid UTF-8", at: textOffset)
            }
            span.attributes[key] = value
        case .typed(.timeToFirstChunk):
            span.firstChunkNanoseconds = seconds.flatMap(nanoseconds)
        case .typed(.requestStream):
            span.requestStream = flag
        }
    }

    /// Seconds as whole nanoseconds, rounded; nil unless finite, at least 0 and under a day.
    static func nanoseconds(_ seconds: Double) -> UInt64? {
        guard seconds.isFinite, seconds >= 0, seconds < 86_400 else { return nil }
        return UInt64((seconds * 1e9).rounded())
    }

    /// An attribute key perfgate reads.
    enum Known {
        case string(OTLPSpan.Key)
        case typed(OTLPSpan.TypedKey)
    }

    /// The key `bytes` spell, compared without making a string of every attribute key.
    static func knownKey(_ bytes: UnsafeBufferPointer<UInt8>) -> Known? {
        for (key, spelled) in keyBytes where spelled.count == bytes.count && spelled.elementsEqual(bytes) { return key }
        return nil
    }

    private static let keyBytes = OTLPSpan.Key.allCases.map { (Known.string($0), Array($0.name.utf8)) }
        + OTLPSpan.TypedKey.allCases.map { (Known.typed($0), Array($0.name.utf8)) }

    private static func bigEndian(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in start..<(start + 8) { value = value << 8 | UInt64(bytes[index]) }
        return value
    }

    // MARK: Both

    /// The span with its ids in place, or why it cannot be used. A byte count of -1 stands for a
    /// JSON id that is not hex of the right length.
    static func checked(
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

    static func place(_ resource: Int, _ scope: Int, _ span: Int) -> String {
        "resourceSpans[\(resource)].scopeSpans[\(scope)].spans[\(span)]"
    }
}
