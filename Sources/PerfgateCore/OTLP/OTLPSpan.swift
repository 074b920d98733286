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

/// What perfgate reads of one OTLP span: its place in the trace, its name and times, and the
/// attributes that name a stage or label the trace's event.
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
    /// The span's name.
    package var name = ""
    /// Start and end, in Unix nanoseconds.
    package var startNanoseconds: UInt64 = 0
    package var endNanoseconds: UInt64 = 0
    /// The attributes perfgate reads, by their keys.
    package var attributes = Attributes()

    /// A span of `traceID` with id `spanID`.
    package init(traceID: TraceID, spanID: UInt64) {
        self.traceID = traceID
        self.spanID = spanID
    }

    /// The root of its trace in the process that sent it: no parent, or a remote one.
    package var isLocalRoot: Bool { parentSpanID == 0 || parentIsRemote }

    /// The string attributes perfgate reads; others are received and ignored.
    package struct Attributes: Equatable, Sendable {
        package var values: [String?] = Array(repeating: nil, count: Key.allCases.count)

        package init() {}

        package subscript(key: Key) -> String? {
            get { values[key.rawValue] }
            set { values[key.rawValue] = newValue }
        }
    }

    /// The attribute keys perfgate reads.
    package enum Key: Int, CaseIterable, Sendable {
        case stage, httpRoute, endpoint, providerName, system, provider, requestModel, model

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
            }
        }

        /// The key named `name`, if perfgate reads it.
        package init?(name: String) {
            guard let key = Self.byName[name] else { return nil }
            self = key
        }

        private static let byName = Dictionary(uniqueKeysWithValues: allCases.map { ($0.name, $0) })
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
    /// The span as an OTLP `Span` message of the fields perfgate reads: how the store keeps a
    /// span that waits for its root, read back by the same decoder as a request's spans.
    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + name.utf8.count)
        var id: [UInt8] = []
        for half in [traceID.high, traceID.low] { withUnsafeBytes(of: half.bigEndian) { id.append(contentsOf: $0) } }
        ProtobufWriter.bytes(1, id, into: &out)
        ProtobufWriter.bytes(2, withUnsafeBytes(of: spanID.bigEndian) { Array($0) }, into: &out)
        if parentSpanID != 0 { ProtobufWriter.bytes(4, withUnsafeBytes(of: parentSpanID.bigEndian) { Array($0) }, into: &out) }
        ProtobufWriter.string(5, name, into: &out)
        ProtobufWriter.fixed64(7, startNanoseconds, into: &out)
        ProtobufWriter.fixed64(8, endNanoseconds, into: &out)
        for key in Key.allCases {
            guard let value = attributes[key] else { continue }
            var any: [UInt8] = []
            ProtobufWriter.string(1, value, into: &any)
            var pair: [UInt8] = []
            ProtobufWriter.string(1, key.name, into: &pair)
            ProtobufWriter.bytes(2, any, into: &pair)
            ProtobufWriter.bytes(9, pair, into: &out)
        }
        if parentIsRemote { ProtobufWriter.fixed32(16, 0x300, into: &out) }
        return out
    }

    /// A span `encoded()` wrote, or nil when the bytes are not one.
    package init?(encoded bytes: UnsafeBufferPointer<UInt8>) {
        var reader = ProtobufReader(bytes)
        guard case .success(let span)? = try? TraceRequestDecoder.span(&reader) else { return nil }
        self = span
    }
}
