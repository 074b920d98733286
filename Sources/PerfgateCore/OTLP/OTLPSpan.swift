/// A trace's identity: OTLP's 16-byte trace id, as two big-endian halves.
package struct TraceID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The first eight bytes.
    package var high: UInt64
    /// The last eight bytes.
    package var low: UInt64

    /// A trace id from its halves.
    package init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// All zeros: OTLP's invalid trace id.
    package var isZero: Bool { high == 0 && low == 0 }

    /// Lower-case hex, as OTLP/JSON and W3C trace context write it.
    package var description: String { Hex.fixed(high) + Hex.fixed(low) }

    package static func < (a: TraceID, b: TraceID) -> Bool { (a.high, a.low) < (b.high, b.low) }
}

/// What perfgate reads of one OTLP span: its place in the trace, its kind and times, and the
/// attributes that name a stage, label the trace's event or time a model call. Nothing else is
/// kept, so a span costs a bounded number of bytes whatever its name or attributes hold.
package struct OTLPSpan: Equatable, Sendable {
    /// The trace it belongs to.
    package var traceID: TraceID
    /// Its id, never 0.
    package var spanID: UInt64
    /// Its parent's id; 0 for a root span.
    package var parentSpanID: UInt64 = 0
    /// The parent lives in another process (W3C context from a caller): this span is its
    /// process's local root.
    package var parentIsRemote = false
    /// The span's name when it is one of the seed's stage names, the only names perfgate reads;
    /// empty for any other name.
    package var name = ""
    /// OTLP's `SpanKind`.
    package var kind = Kind.unspecified
    /// Start and end, in Unix nanoseconds.
    package var startNanoseconds: UInt64 = 0
    package var endNanoseconds: UInt64 = 0
    /// The string attributes perfgate reads, by their keys.
    package var attributes = Attributes()
    /// `gen_ai.response.time_to_first_chunk`, in nanoseconds from the span's start.
    package var firstChunkNanoseconds: UInt64?
    /// `gen_ai.request.stream`: whether a model call asked for a streamed answer.
    package var requestStream: Bool?
    /// Set on a local root whose event has been counted: what was counted, so that spans
    /// arriving later complete the event instead of counting it again. Never read from a request.
    package var settlement: Settlement? {
        get { settled?.settlement }
        set { settled = newValue.map(Settled.init) }
    }
    /// The settlement behind one reference: every span is copied several times on its way
    /// through assembly, and few carry one.
    private var settled: Settled?

    /// A span of `traceID` with id `spanID`.
    package init(traceID: TraceID, spanID: UInt64) {
        self.traceID = traceID
        self.spanID = spanID
    }

    /// The root of its trace in the process that sent it: no parent, or a remote one.
    package var isLocalRoot: Bool { parentSpanID == 0 || parentIsRemote }

    /// OTLP's span kinds, by their numbers in the protocol.
    package enum Kind: UInt8, Sendable {
        case unspecified = 0, `internal`, server, client, producer, consumer

        /// The kind numbered `number`; unknown numbers read as unspecified, as OTLP allows.
        package init(number: UInt64) { self = Kind(rawValue: UInt8(truncatingIfNeeded: min(number, 255))) ?? .unspecified }
    }

    /// A call to a model, as the GenAI semantic conventions describe it: a span whose
    /// `gen_ai.operation.name` is an inference or embeddings operation, made as a client
    /// (or in process), never the server side of a request.
    package var isModelCall: Bool {
        guard kind != .server, let operation = attributes[.operationName] else { return false }
        return Self.modelOperations.contains(operation)
    }

    /// The operations that call a model; agent and tool operations do not.
    package static let modelOperations: Set<String> = ["chat", "text_completion", "generate_content", "embeddings", "completion"]

    /// An HTTP request this process made (an HTTP client instrumentation's span): it ends when
    /// the response's head has arrived.
    package var isHTTPClient: Bool {
        kind == .client && (attributes[.httpRequestMethod] != nil || attributes[.httpMethod] != nil)
    }

    /// The string attributes perfgate reads; others are received and ignored.
    package struct Attributes: Equatable, Sendable {
        package var values: [String?] = Array(repeating: nil, count: Key.allCases.count)

        package init() {}

        package subscript(key: Key) -> String? {
            get { values[key.rawValue] }
            set { values[key.rawValue] = newValue }
        }
    }

    /// The string attribute keys perfgate reads.
    package enum Key: Int, CaseIterable, Sendable {
        case stage, httpRoute, endpoint, providerName, system, provider, requestModel, model, operationName, httpRequestMethod, httpMethod

        /// The key as senders write it.
        package var name: String {
            switch self {
            case .stage: "perfgate.stage"
            case .httpRoute: "http.route"
            case .endpoint: "perfgate.endpoint"
            case .providerName: "gen_ai.provider.name"
            case .system: "gen_ai.system"
            case .provider: "perfgate.provider"
            case .requestModel: "gen_ai.request.model"
            case .model: "perfgate.model"
            case .operationName: "gen_ai.operation.name"
            case .httpRequestMethod: "http.request.method"
            case .httpMethod: "http.method"
            }
        }

        /// The key named `name`, if perfgate reads it.
        package init?(name: String) {
            guard let key = Self.byName[name] else { return nil }
            self = key
        }

        private static let byName = Dictionary(uniqueKeysWithValues: allCases.map { ($0.name, $0) })
    }

    /// The typed attributes perfgate reads besides the strings.
    package enum TypedKey: CaseIterable, Sendable {
        case timeToFirstChunk, requestStream

        /// The key as senders write it.
        package var name: String {
            switch self {
            case .timeToFirstChunk: "gen_ai.response.time_to_first_chunk"
            case .requestStream: "gen_ai.request.stream"
            }
        }
    }

    private final class Settled: Equatable, Sendable {
        let settlement: Settlement
        init(_ settlement: Settlement) { self.settlement = settlement }
        static func == (a: Settled, b: Settled) -> Bool { a.settlement == b.settlement }
    }

    /// What was counted of a local root's event, kept with the root while later spans may come.
    package struct Settlement: Equatable, Sendable {
        /// The stages counted, in the order they were.
        package var stages: [String] = []
        /// The ids of the trace's spans already taken under this root: a span arriving later
        /// whose parent is one of them belongs to this root.
        package var members: [UInt64] = []
        /// The labels the event was counted with; later parts are counted with the same ones.
        package var endpoint: String?
        package var provider: String?
        package var model: String?
        /// The event was refused: later spans of the root are refused too.
        package var refused = false

        /// Nothing counted yet.
        package init() {}
    }

    /// A seed stage name spelled by `bytes`, as the decoders keep it; nil for any other name.
    package static func seedStageName(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        for (name, spelled) in seedNameBytes where spelled.count == bytes.count && spelled.elementsEqual(bytes) { return name }
        return nil
    }

    private static let seedNameBytes = StageName.seed.map { ($0, Array($0.utf8)) }

    /// The longest attribute value kept, in bytes, when labels may be `labelBytes` long and
    /// stage names `stageBytes`: one byte more than either, so that a value cut here is still
    /// refused as too long, never counted cut.
    package static func keptValueBytes(_ limits: IngestLimits) -> Int {
        max(limits.maxLabelValueBytes, limits.maxStageNameBytes) + 1
    }

    /// `text` cut to at most `limit` bytes of UTF-8, at a character boundary.
    package static func cut(_ bytes: UnsafeBufferPointer<UInt8>, to limit: Int) -> UnsafeBufferPointer<UInt8> {
        guard bytes.count > limit else { return bytes }
        var end = limit
        // Back off continuation bytes (10xxxxxx) so the cut leaves whole scalars.
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[..<end])
    }
}

/// Fixed-width lower-case hex.
enum Hex {
    static func fixed(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The value of hex text of at most 16 digits (either case), or nil.
    static func value<S: StringProtocol>(_ text: S) -> UInt64? {
        guard !text.isEmpty, text.utf8.count <= 16 else { return nil }
        return UInt64(text, radix: 16)
    }
}

extension OTLPSpan {
    /// Where a stored span keeps its settlement: a field number OTLP's `Span` leaves unused, and
    /// one the request decoders skip, so that no sender can write a settlement.
    private static let settlementField = 100

    /// The span as an OTLP `Span` message of the fields perfgate reads, its settlement after
    /// them: how the store keeps a span that waits, read back by the same decoder as a
    /// request's spans.
    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96 + name.utf8.count)
        var id: [UInt8] = []
        for half in [traceID.high, traceID.low] { withUnsafeBytes(of: half.bigEndian) { id.append(contentsOf: $0) } }
        ProtobufWriter.bytes(1, id, into: &out)
        ProtobufWriter.bytes(2, withUnsafeBytes(of: spanID.bigEndian) { Array($0) }, into: &out)
        if parentSpanID != 0 { ProtobufWriter.bytes(4, withUnsafeBytes(of: parentSpanID.bigEndian) { Array($0) }, into: &out) }
        if !name.isEmpty { ProtobufWriter.string(5, name, into: &out) }
        if kind != .unspecified { ProtobufWriter.varint(6, UInt64(kind.rawValue), into: &out) }
        ProtobufWriter.fixed64(7, startNanoseconds, into: &out)
        ProtobufWriter.fixed64(8, endNanoseconds, into: &out)
        func attribute(_ key: String, _ value: (inout [UInt8]) -> Void) {
            var any: [UInt8] = []
            value(&any)
            var pair: [UInt8] = []
            ProtobufWriter.string(1, key, into: &pair)
            ProtobufWriter.bytes(2, any, into: &pair)
            ProtobufWriter.bytes(9, pair, into: &out)
        }
        for key in Key.allCases {
            guard let value = attributes[key] else { continue }
            attribute(key.name) { ProtobufWriter.string(1, value, into: &$0) }
        }
        // Whole nanoseconds as seconds: an AnyValue double holds them exactly below 2^53 ns (104 days).
        if let firstChunkNanoseconds {
            attribute(TypedKey.timeToFirstChunk.name) { ProtobufWriter.fixed64(4, (Double(firstChunkNanoseconds) / 1e9).bitPattern, into: &$0) }
        }
        if let requestStream { attribute(TypedKey.requestStream.name) { ProtobufWriter.varint(2, requestStream ? 1 : 0, into: &$0) } }
        if parentIsRemote { ProtobufWriter.fixed32(16, 0x300, into: &out) }
        if let settlement {
            var message: [UInt8] = []
            for stage in settlement.stages { ProtobufWriter.string(1, stage, into: &message) }
            for member in settlement.members { ProtobufWriter.fixed64(2, member, into: &message) }
            if let endpoint = settlement.endpoint { ProtobufWriter.string(3, endpoint, into: &message) }
            if let provider = settlement.provider { ProtobufWriter.string(4, provider, into: &message) }
            if let model = settlement.model { ProtobufWriter.string(5, model, into: &message) }
            if settlement.refused { ProtobufWriter.varint(6, 1, into: &message) }
            ProtobufWriter.bytes(Self.settlementField, message, into: &out)
        }
        return out
    }

    /// A span `encoded()` wrote, or nil when the bytes are not one.
    package init?(encoded bytes: UnsafeBufferPointer<UInt8>) {
        var reader = ProtobufReader(bytes)
        guard case .success(var span)? = try? TraceRequestDecoder.span(&reader, keptValueBytes: .max) else { return nil }
        var fields = ProtobufReader(bytes)
        do throws(ProtobufError) {
            while let (number, wireType) = try fields.nextField() {
                guard number == Self.settlementField else { try fields.skip(wireType); continue }
                try fields.expect(.lengthDelimited, got: wireType, field: number, in: "stored span")
                var message = try fields.message()
                var settlement = Settlement()
                while let (number, wireType) = try message.nextField() {
                    switch (number, wireType) {
                    case (1, .lengthDelimited): settlement.stages.append(try message.string())
                    case (2, .fixed64): settlement.members.append(try message.fixed64())
                    case (3, .lengthDelimited): settlement.endpoint = try message.string()
                    case (4, .lengthDelimited): settlement.provider = try message.string()
                    case (5, .lengthDelimited): settlement.model = try message.string()
                    case (6, .varint): settlement.refused = try message.varint() != 0
                    default: return nil
                    }
                }
                span.settlement = settlement
            }
        } catch {
            return nil
        }
        self = span
    }
}
