extension TraceRequestDecoder {
    /// Reads an OTLP/JSON body of at most `maxSpans` spans as it scans it, building no tree: the
    /// memory it takes is that of the spans it keeps (bounded each), whatever the body holds.
    /// Field names are lowerCamelCase (the protobuf names are accepted too), ids are hex, 64-bit
    /// integers numbers or decimal strings, as OTLP/JSON writes them.
    package static func json(_ bytes: UnsafeBufferPointer<UInt8>, maxSpans: Int, keptValueBytes: Int) throws(TraceDecodingError) -> DecodedTraces {
        var decoded = DecodedTraces()
        var scanner = JSONScanner(bytes: bytes)
        do {
            guard try scanner.peekKind() == .object else { throw TraceDecodingError("the body must be a JSON object with resourceSpans") }
            try scanner.readObjectKeys { key, _, scanner in
                guard named(key, "resourceSpans", "resource_spans") else { return try scanner.skipValue() }
                try list(&scanner, "resourceSpans", at: "") { resourceIndex, scanner in
                    let resourcePath = "resourceSpans[\(resourceIndex)]"
                    try object(&scanner, at: resourcePath) { key, scanner in
                        guard named(key, "scopeSpans", "scope_spans") else { return try scanner.skipValue() }
                        try list(&scanner, "scopeSpans", at: resourcePath) { scopeIndex, scanner in
                            let scopePath = "\(resourcePath).scopeSpans[\(scopeIndex)]"
                            try object(&scanner, at: scopePath) { key, scanner in
                                guard named(key, "spans", "spans") else { return try scanner.skipValue() }
                                try list(&scanner, "spans", at: scopePath) { spanIndex, scanner in
                                    guard decoded.spanCount < maxSpans else {
                                        throw TraceDecodingError("the body holds more than \(maxSpans) spans; send smaller exports", tooManySpans: true)
                                    }
                                    let path = "\(scopePath).spans[\(spanIndex)]"
                                    switch try span(&scanner, at: path, keptValueBytes: keptValueBytes) {
                                    case .success(let read): decoded.spans.append(read)
                                    case .failure(let reason): decoded.refused.append((place(resourceIndex, scopeIndex, spanIndex), reason.message))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            scanner.skipWhitespace()
            guard scanner.isAtEnd else { throw scanner.error(expected: "the end of the body") }
        } catch let error as TraceDecodingError {
            throw error
        } catch let error as JSONSyntaxError {
            throw TraceDecodingError("the body is not JSON: \(error.message) at byte \(error.offset)")
        } catch {
            throw TraceDecodingError("\(error)")
        }
        return decoded
    }

    /// The key spells `name` or `protoName`.
    private static func named(_ key: UnsafeBufferPointer<UInt8>, _ name: StaticString, _ protoName: StaticString) -> Bool {
        func equal(_ spelled: StaticString) -> Bool {
            spelled.withUTF8Buffer { $0.count == key.count && $0.elementsEqual(key) }
        }
        return equal(name) || equal(protoName)
    }

    /// The elements of the array under `name`, each read by `element`; null is empty.
    private static func list(_ scanner: inout JSONScanner, _ name: String, at path: String, _ element: (Int, inout JSONScanner) throws -> Void) throws {
        switch try scanner.peekKind() {
        case .null: try scanner.readNull()
        case .array: try scanner.readArray(element)
        default: throw TraceDecodingError("\(path.isEmpty ? "" : path + ".")\(name) must be an array")
        }
    }

    /// The members of the object at `path`, each read (or skipped) by `member`.
    private static func object(_ scanner: inout JSONScanner, at path: String, _ member: (UnsafeBufferPointer<UInt8>, inout JSONScanner) throws -> Void) throws {
        guard try scanner.peekKind() == .object else { throw TraceDecodingError("\(path) must be an object") }
        try scanner.readObjectKeys { key, _, scanner in try member(key, &scanner) }
    }

    private static func span(_ scanner: inout JSONScanner, at path: String, keptValueBytes: Int) throws -> Result<OTLPSpan, SpanRefusal> {
        var span = OTLPSpan(traceID: TraceID(high: 0, low: 0), spanID: 0)
        var traceID: [UInt64]?
        var spanID: [UInt64]?
        var parent: [UInt64]?
        try object(&scanner, at: path) { key, scanner in
            // null is an absent member, as protobuf's JSON mapping says.
            if try scanner.peekKind() == .null { return try scanner.readNull() }
            if named(key, "traceId", "trace_id") {
                traceID = try id(&scanner, "\(path).traceId", digits: 32)
            } else if named(key, "spanId", "span_id") {
                spanID = try id(&scanner, "\(path).spanId", digits: 16)
            } else if named(key, "parentSpanId", "parent_span_id") {
                // An empty string is no parent, as an empty bytes field is in protobuf.
                parent = try id(&scanner, "\(path).parentSpanId", digits: 16, emptyIsNone: true)
            } else if named(key, "name", "name") {
                guard try scanner.peekKind() == .string else { throw TraceDecodingError("\(path).name must be a string") }
                span.name = try scanner.withStringBytes { text, _ in OTLPSpan.seedStageName(text) } ?? ""
            } else if named(key, "kind", "kind") {
                // An integer, as OTLP/JSON writes enums; the enum's name is read too.
                if try scanner.peekKind() == .string {
                    span.kind = kindNames[try scanner.readString()] ?? .unspecified
                } else {
                    span.kind = OTLPSpan.Kind(number: try number(&scanner, "\(path).kind", max: UInt64(Int32.max), strings: false))
                }
            } else if named(key, "startTimeUnixNano", "start_time_unix_nano") {
                span.startNanoseconds = try number(&scanner, "\(path).startTimeUnixNano", max: .max, strings: true)
            } else if named(key, "endTimeUnixNano", "end_time_unix_nano") {
                span.endNanoseconds = try number(&scanner, "\(path).endTimeUnixNano", max: .max, strings: true)
            } else if named(key, "flags", "flags") {
                span.parentIsRemote = try number(&scanner, "\(path).flags", max: UInt64(UInt32.max), strings: false) & 0x300 == 0x300
            } else if named(key, "attributes", "attributes") {
                guard try scanner.peekKind() == .array else { throw TraceDecodingError("\(path).attributes must be an array") }
                try scanner.readArray { index, scanner in try attribute(&scanner, at: "\(path).attributes[\(index)]", into: &span, keptValueBytes: keptValueBytes) }
            } else {
                try scanner.skipValue()
            }
        }
        func bytes(_ halves: [UInt64]?) -> Int { halves.map { $0.isEmpty ? -1 : $0.count * 8 } ?? 0 }
        span.parentSpanID = parent?.first ?? 0
        return checked(
            span, traceID: traceID.flatMap { $0.count == 2 ? TraceID(high: $0[0], low: $0[1]) : nil }, traceIDBytes: bytes(traceID),
            spanID: spanID?.first, spanIDBytes: bytes(spanID), parentBytes: bytes(parent)
        )
    }

    /// An id's 64-bit halves; `[]` when its text is not `digits` hex digits; nil for empty text
    /// when `emptyIsNone`.
    private static func id(_ scanner: inout JSONScanner, _ path: String, digits: Int, emptyIsNone: Bool = false) throws -> [UInt64]? {
        guard try scanner.peekKind() == .string else { throw TraceDecodingError("\(path) must be a string of hex digits") }
        return try scanner.withStringBytes { text, _ in
            if text.isEmpty, emptyIsNone { return nil }
            guard text.count == digits else { return [] }
            var halves: [UInt64] = []
            for start in stride(from: 0, to: digits, by: 16) {
                var half: UInt64 = 0
                for byte in text[start..<(start + 16)] {
                    guard let digit = hexDigit(byte) else { return [] }
                    half = half << 4 | UInt64(digit)
                }
                halves.append(half)
            }
            return halves
        }
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A whole number from 0 to `max`: a JSON number, or (with `strings`) a decimal string as
    /// protobuf's JSON mapping writes 64-bit integers.
    private static func number(_ scanner: inout JSONScanner, _ path: String, max: UInt64, strings: Bool) throws -> UInt64 {
        let problem = TraceDecodingError("\(path) must be a whole number from 0 to \(max)\(strings ? ", or a string of at most 19 digits" : "")")
        switch try scanner.peekKind() {
        case .string where strings:
            let parsed = try scanner.withStringBytes { text, _ in
                (1...19).contains(text.count) && text.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) ? UInt64(String(decoding: text, as: UTF8.self)) : nil
            }
            guard let parsed else { throw problem }
            return parsed
        case .number:
            guard case .finite(let range) = try scanner.readNumber() else { throw problem }
            let text = String(decoding: UnsafeBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self)
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

    /// One `KeyValue`: its value is read once the key is known (JSON members come in any order),
    /// and only when perfgate reads that key.
    private static func attribute(_ scanner: inout JSONScanner, at path: String, into span: inout OTLPSpan, keptValueBytes: Int) throws {
        let shape = TraceDecodingError("\(path) must be an object with a string key")
        guard try scanner.peekKind() == .object else { throw shape }
        var key: Known??
        var value: Range<Int>?
        try scanner.readObjectKeys { member, _, scanner in
            if named(member, "key", "key") {
                guard try scanner.peekKind() == .string else { throw shape }
                key = .some(try scanner.withStringBytes { text, _ in knownKey(text) })
            } else if named(member, "value", "value") {
                let kind = try scanner.peekKind()
                guard kind == .object || kind == .null else {
                    throw TraceDecodingError("\(path).value must be an object such as {\"stringValue\": \"…\"}")
                }
                let start = scanner.position
                try scanner.skipValue()
                if kind == .object { value = start..<scanner.position }
            } else {
                try scanner.skipValue()
            }
        }
        guard let key else { throw shape }
        guard let known = key, let value else { return }
        var text: String?
        var flag: Bool?
        var seconds: Double?
        var any = JSONScanner(bytes: scanner.bytes, range: value)
        try any.readObjectKeys { member, _, any in
            if named(member, "stringValue", "string_value"), try any.peekKind() == .string {
                text = try any.withStringBytes { bytes, _ in String(decoding: OTLPSpan.cut(bytes, to: keptValueBytes), as: UTF8.self) }
            } else if named(member, "boolValue", "bool_value"), try any.peekKind() == .bool {
                flag = try any.readBool()
            } else if named(member, "doubleValue", "double_value") || named(member, "intValue", "int_value") {
                // A double is a JSON number (or "NaN" and the like); an int64 a decimal string or number.
                switch try any.peekKind() {
                case .number:
                    if case .finite(let range) = try any.readNumber() {
                        seconds = Double(String(decoding: UnsafeBufferPointer(rebasing: any.bytes[range]), as: UTF8.self))
                    }
                case .string: seconds = Double(try any.readString())
                default: try any.skipValue()
                }
            } else {
                try any.skipValue()
            }
        }
        switch known {
        case .string(let key): if let text { span.attributes[key] = text }
        case .typed(.timeToFirstChunk): span.firstChunkNanoseconds = seconds.flatMap(nanoseconds)
        case .typed(.requestStream): span.requestStream = flag
        }
    }

    private static let kindNames: [String: OTLPSpan.Kind] = [
        "SPAN_KIND_UNSPECIFIED": .unspecified, "SPAN_KIND_INTERNAL": .internal, "SPAN_KIND_SERVER": .server,
        "SPAN_KIND_CLIENT": .client, "SPAN_KIND_PRODUCER": .producer, "SPAN_KIND_CONSUMER": .consumer,
    ]
}
