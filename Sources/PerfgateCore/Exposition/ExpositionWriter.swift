/// Writes the Prometheus text exposition format, version 0.0.4, as bytes.
///
/// Label values are escaped (`\\`, `\"`, `\n`), `HELP` text too (`\\`, `\n`), and non-finite
/// values are written `+Inf`, `-Inf`, `NaN`. The caller decides the order of families and series.
public struct ExpositionWriter {
    /// The text so far.
    public private(set) var bytes: [UInt8] = []

    /// The value of the `Content-Type` header for this format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// An empty page, with room for `capacity` bytes.
    public init(capacity: Int = 4096) {
        bytes.reserveCapacity(capacity)
    }

    /// The kind of a family, for its `# TYPE` line.
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    /// Writes the `# HELP` and `# TYPE` lines of a family.
    public mutating func header(name: String, help: String, kind: Kind) {
        append("# HELP ")
        append(name)
        append(" ")
        for byte in help.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "\n"): append("\\n")
            default: bytes.append(byte)
            }
        }
        append("\n# TYPE ")
        append(name)
        append(" ")
        append(kind.rawValue)
        append("\n")
    }

    /// Writes one sample line: `name{labels} value`.
    public mutating func sample(name: String, labels: RenderedLabels, value: Double) {
        append(name)
        writeLabels(labels, extra: nil)
        append(" ")
        append(Self.format(value))
        append("\n")
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one histogram series.
    public mutating func histogram(name: String, labels: RenderedLabels, counts: HistogramCounts, boundLabels: [String]) {
        var cumulative: UInt64 = 0
        for (index, count) in counts.buckets.enumerated() {
            cumulative &+= count
            append(name)
            append("_bucket")
            writeLabels(labels, extra: boundLabels[index])
            append(" ")
            append(String(cumulative))
            append("\n")
        }
        append(name)
        append("_sum")
        writeLabels(labels, extra: nil)
        append(" ")
        append(DecimalSeconds.format(nanoseconds: counts.sumNanoseconds))
        append("\n")
        append(name)
        append("_count")
        writeLabels(labels, extra: nil)
        append(" ")
        append(String(cumulative))
        append("\n")
    }

    private mutating func writeLabels(_ labels: RenderedLabels, extra le: String?) {
        if labels.bytes.isEmpty && le == nil { return }
        append("{")
        bytes.append(contentsOf: labels.bytes)
        if let le {
            if !labels.bytes.isEmpty { append(",") }
            append("le=\"")
            append(le)
            append("\"")
        }
        append("}")
    }

    private mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// A sample value as the format writes it.
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }
}

/// A series' labels rendered once, when the series is created: `provider="a",model="b"`.
public struct RenderedLabels: Hashable, Sendable {
    /// The text between the braces, without them.
    public let bytes: [UInt8]

    /// No labels.
    public static let none = RenderedLabels(bytes: [])

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Renders name-value pairs in the given order, escaping the values.
    public init(_ pairs: [(name: String, value: String)]) {
        var bytes: [UInt8] = []
        for (index, pair) in pairs.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: pair.name.utf8)
            bytes.append(contentsOf: "=\"".utf8)
            for byte in pair.value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): bytes.append(contentsOf: "\\\\".utf8)
                case UInt8(ascii: "\""): bytes.append(contentsOf: "\\\"".utf8)
                case UInt8(ascii: "\n"): bytes.append(contentsOf: "\\n".utf8)
                default: bytes.append(byte)
                }
            }
            bytes.append(UInt8(ascii: "\""))
        }
        self.bytes = bytes
    }

    /// The labels of a histogram series.
    public init(_ key: SeriesKey) {
        self.init(Array(zip(key.metric.labelNames, key.labelValues)).map { (name: $0.0, value: $0.1) })
    }
}
