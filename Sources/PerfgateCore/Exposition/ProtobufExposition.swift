/// Writes Prometheus' protobuf exposition: length-delimited `io.prometheus.client.MetricFamily`
/// messages, the format Prometheus asks for when native histograms are enabled. Histograms carry
/// their classic buckets and, when every observation was recorded exponentially, the same
/// observations as a native histogram (schema 6, zero threshold 0).
///
/// A purpose-built encoder rather than swift-protobuf: the handful of fields written here
/// (docs/prometheus-client-model.proto lists them with their numbers) take ~150 lines, write
/// straight into the page's byte array with no message objects, and keep the generated code and
/// the code generator's build out of the project.
struct ProtobufExposition {
    private(set) var bytes: [UInt8] = []
    /// The family being written: its header fields and its metrics so far.
    private var family: [UInt8] = []
    private var familyKind: ExpositionWriter.Kind = .gauge
    private var familyOpen = false

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    // MARK: Families and samples

    mutating func header(name: String, help: String, kind: ExpositionWriter.Kind) {
        finishFamily()
        familyOpen = true
        familyKind = kind
        family.removeAll(keepingCapacity: true)
        ProtobufWriter.string(1, name, into: &family)
        ProtobufWriter.string(2, help, into: &family)
        // MetricType: COUNTER 0, GAUGE 1, HISTOGRAM 4.
        ProtobufWriter.varint(3, kind == .counter ? 0 : kind == .gauge ? 1 : 4, into: &family)
    }

    mutating func sample(labels: RenderedLabels, value: Double) {
        var metric: [UInt8] = []
        Self.labels(labels, into: &metric)
        var inner: [UInt8] = []
        ProtobufWriter.double(1, value, into: &inner)
        // Metric.counter = 3, Metric.gauge = 2.
        ProtobufWriter.bytes(familyKind == .counter ? 3 : 2, inner, into: &metric)
        ProtobufWriter.bytes(4, metric, into: &family)
    }

    mutating func histogram(upperBounds: [Double], labels: RenderedLabels, counts: HistogramCounts) {
        var metric: [UInt8] = []
        Self.labels(labels, into: &metric)
        var histogram: [UInt8] = []
        let total = counts.count
        ProtobufWriter.varint(1, total, into: &histogram)  // sample_count
        ProtobufWriter.double(2, Double(counts.sumNanoseconds) / 1e9, into: &histogram)  // sample_sum
        var cumulative: UInt64 = 0
        for (index, bound) in upperBounds.enumerated() {  // finite bounds; +Inf is implied
            cumulative &+= counts.buckets[index]
            // A Bucket written in place: its length is known without building it apart.
            ProtobufWriter.tag(3, .lengthDelimited, into: &histogram)
            Varint.append(UInt64(1 + Varint.size(cumulative) + 1 + 8), to: &histogram)
            ProtobufWriter.varint(1, cumulative, into: &histogram)  // cumulative_count
            ProtobufWriter.double(2, bound, into: &histogram)  // upper_bound
        }
        if counts.hasWholeExponential {
            Self.native(counts.exponential, into: &histogram)
        }
        ProtobufWriter.bytes(7, histogram, into: &metric)  // Metric.histogram
        ProtobufWriter.bytes(4, metric, into: &family)  // MetricFamily.metric
    }

    /// The native histogram fields: schema 5, zero_threshold 6, zero_count 7, positive_span 12,
    /// positive_delta 13.
    private static func native(_ buckets: ExponentialBuckets, into out: inout [UInt8]) {
        ProtobufWriter.sint64(5, Int64(ExponentialBuckets.schema), into: &out)
        ProtobufWriter.double(6, 0, into: &out)
        ProtobufWriter.varint(7, buckets.zeroCount, into: &out)
        guard !buckets.indices.isEmpty else {
            // A no-op span: with a zero threshold of 0 and no buckets, it is what tells
            // Prometheus this is a native histogram at all.
            var span: [UInt8] = []
            ProtobufWriter.sint64(1, 0, into: &span)
            ProtobufWriter.varint(2, 0, into: &span)
            ProtobufWriter.bytes(12, span, into: &out)
            return
        }
        // Runs of consecutive indices become spans; each span's offset is the gap after the
        // previous one (the first: its starting index).
        var spanStart = 0
        var previousEnd: Int32 = 0
        for position in 1...buckets.indices.count {
            if position < buckets.indices.count && buckets.indices[position] == buckets.indices[position - 1] + 1 { continue }
            let first = buckets.indices[spanStart]
            var span: [UInt8] = []
            ProtobufWriter.sint64(1, Int64(spanStart == 0 ? first : first - previousEnd), into: &span)
            ProtobufWriter.varint(2, UInt64(position - spanStart), into: &span)
            ProtobufWriter.bytes(12, span, into: &out)
            previousEnd = buckets.indices[position - 1] + 1
            spanStart = position
        }
        // Counts as deltas from the previous bucket's; unpacked, as proto2 writes repeated fields.
        var previous: Int64 = 0
        for count in buckets.counts {
            let value = Int64(bitPattern: count)
            ProtobufWriter.sint64(13, value &- previous, into: &out)
            previous = value
        }
    }

    /// Ends the page.
    mutating func finish() {
        finishFamily()
    }

    private mutating func finishFamily() {
        guard familyOpen else { return }
        // Delimited: each MetricFamily preceded by its length.
        Varint.append(UInt64(family.count), to: &bytes)
        bytes.append(contentsOf: family)
        familyOpen = false
    }

    // MARK: Labels

    /// LabelPair messages (Metric.label = 1) from labels rendered as text: `name="value",…`
    /// with `\\`, `\"` and `\n` escaped.
    private static func labels(_ labels: RenderedLabels, into out: inout [UInt8]) {
        let text = labels.bytes
        var position = 0
        while position < text.count {
            let nameStart = position
            while position < text.count && text[position] != UInt8(ascii: "=") { position += 1 }
            let name = Array(text[nameStart..<position])
            position += 2  // `="`
            var value: [UInt8] = []
            while position < text.count && text[position] != UInt8(ascii: "\"") {
                if text[position] == UInt8(ascii: "\\"), position + 1 < text.count {
                    position += 1
                    value.append(text[position] == UInt8(ascii: "n") ? UInt8(ascii: "\n") : text[position])
                } else {
                    value.append(text[position])
                }
                position += 1
            }
            position += 2  // `",`
            var pair: [UInt8] = []
            ProtobufWriter.bytes(1, name, into: &pair)
            ProtobufWriter.bytes(2, value, into: &pair)
            ProtobufWriter.bytes(1, pair, into: &out)
        }
    }
}
