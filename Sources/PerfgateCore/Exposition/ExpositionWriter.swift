import NIOCore

/// Writes the Prometheus text exposition format, version 0.0.4, as bytes (or the protobuf format).
///
/// Label values are escaped (`\\`, `\"`, `\n`), `HELP` text too (`\\`, `\n`), and non-finite
/// values are written `+Inf`, `-Inf`, `NaN`. The caller decides the order of families and series.
///
/// In `.protobuf` format the same calls write Prometheus' protobuf exposition instead (see
/// `ProtobufExposition`), so every family is written once for both formats.
package struct ExpositionWriter {
    /// The page so far, ready to send: the text is written straight into this buffer, so a
    /// megabyte page is neither zero-filled before it is written nor copied after.
    package var page: ByteBuffer {
        if let protobuf {
            var finished = protobuf
            finished.finish()
            return ByteBuffer(bytes: finished.bytes)
        }
        return text
    }

    /// The page so far, as an array.
    package var bytes: [UInt8] {
        Array(page.readableBytesView)
    }

    private var text: ByteBuffer
    private var protobuf: ProtobufExposition?

    /// The formats a page can be written in.
    package enum Format: Sendable {
        /// Text format 0.0.4.
        case text
        /// Length-delimited `io.prometheus.client.MetricFamily` messages, native histograms included.
        case protobuf

        /// The value of the `Content-Type` header for this format.
        package var contentType: String {
            switch self {
            case .text: ExpositionWriter.contentType
            case .protobuf: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        }
    }

    /// The value of the `Content-Type` header for the text format.
    package static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// An empty page, with room for `capacity` bytes.
    package init(capacity: Int = 4096, format: Format = .text) {
        switch format {
        case .text: text = ByteBufferAllocator().buffer(capacity: capacity)
        case .protobuf:
            text = ByteBuffer()
            protobuf = ProtobufExposition(capacity: capacity)
        }
    }

    /// The kind of a family, for its `# TYPE` line.
    package enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    /// Writes the `# HELP` and `# TYPE` lines of a family.
    package mutating func header(name: String, help: String, kind: Kind) {
        if protobuf != nil { return protobuf!.header(name: name, help: help, kind: kind) }
        append("# HELP ")
        append(name)
        append(" ")
        for byte in help.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "\n"): append("\\n")
            default: text.writeInteger(byte)
            }
        }
        append("\n# TYPE ")
        append(name)
        append(" ")
        append(kind.rawValue)
        append("\n")
    }

    /// Writes one sample line: `name{labels} value`.
    package mutating func sample(name: String, labels: RenderedLabels, value: Double) {
        if protobuf != nil { return protobuf!.sample(labels: labels, value: value) }
        append(name)
        writeLabels(labels)
        append(" ")
        append(Self.format(value))
        append("\n")
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one histogram series.
    package mutating func histogram(name: String, labels: RenderedLabels, counts: HistogramCounts, boundLabels: [String]) {
        histogram(HistogramLineParts(name: name, boundLabels: boundLabels), labels: labels, counts: counts)
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one histogram series from parts made
    /// once per family.
    package mutating func histogram(_ parts: HistogramLineParts, labels: RenderedLabels, counts: HistogramCounts) {
        if protobuf != nil { return protobuf!.histogram(upperBounds: parts.upperBounds, labels: labels, counts: counts) }
        labels.bytes.withUnsafeBufferPointer { labelText in
            counts.buckets.withUnsafeBufferPointer { buckets in
                writeHistogram(parts, labels: labelText, buckets: buckets, sumNanoseconds: counts.sumNanoseconds)
            }
        }
    }

    /// Writes the lines of each of a family's series, in the order given.
    package mutating func histograms(_ parts: HistogramLineParts, _ samples: [HistogramSample]) {
        if protobuf != nil {
            for sample in samples { protobuf!.histogram(upperBounds: parts.upperBounds, labels: sample.labels, counts: sample.counts) }
            return
        }
        // Through pointers: passing `sample.counts` on copies the counts (retaining every array
        // in them through generic value witnesses), which was 6% of a scrape.
        samples.withUnsafeBufferPointer { samples in
            for index in samples.indices {
                let sample = samples.baseAddress! + index
                sample.pointee.labels.bytes.withUnsafeBufferPointer { labelText in
                    sample.pointee.counts.buckets.withUnsafeBufferPointer { buckets in
                        writeHistogram(parts, labels: labelText, buckets: buckets, sumNanoseconds: sample.pointee.counts.sumNanoseconds)
                    }
                }
            }
        }
    }

    /// A scrape of 10,000 histograms writes about 120,000 lines, so a series' room is reserved at
    /// once (an upper bound, left uninitialized) and its lines are copied in with a raw cursor: no
    /// `String`, no per-line capacity checks, nothing retained.
    private mutating func writeHistogram(
        _ parts: HistogramLineParts, labels labelText: UnsafeBufferPointer<UInt8>, buckets: UnsafeBufferPointer<UInt64>, sumNanoseconds: Int128
    ) {
        let lineRoom = max(parts.bucketPrefix.count + parts.longestSuffix, parts.countPrefix.count + 3) + labelText.count + 22
        let room = (buckets.count + 2) * lineRoom + LineCursor.longestSeconds
        text.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { out in
            parts.text.withUnsafeBufferPointer { text in
                let start = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                var cursor = LineCursor(start)
                let suffixes = labelText.isEmpty ? parts.bareBucketSuffixes : parts.bucketSuffixes
                var cumulative: UInt64 = 0
                for index in 0..<buckets.count {
                    cumulative &+= buckets[index]
                    cursor.copy(text, parts.bucketPrefix)
                    cursor.copy(labelText, 0..<labelText.count)
                    cursor.copy(text, suffixes[index])
                    cursor.decimal(cumulative)
                    cursor.byte(UInt8(ascii: "\n"))
                }
                cursor.seriesName(text, parts.sumPrefix, labels: labelText)
                cursor.seconds(nanoseconds: sumNanoseconds)
                cursor.byte(UInt8(ascii: "\n"))
                cursor.seriesName(text, parts.countPrefix, labels: labelText)
                cursor.decimal(cumulative)
                cursor.byte(UInt8(ascii: "\n"))
                let written = cursor.position - start
                precondition(written <= room, "a histogram series outgrew the room reserved for it")
                return written
            }
        }
    }

    private mutating func writeLabels(_ labels: RenderedLabels) {
        if labels.bytes.isEmpty { return }
        text.writeInteger(UInt8(ascii: "{"))
        text.writeBytes(labels.bytes)
        text.writeInteger(UInt8(ascii: "}"))
    }

    private mutating func append(_ string: String) {
        text.writeString(string)
    }

    /// A sample value as the format writes it.
    package static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }
}

/// The constant text of a histogram family's lines, made once per family per page and kept in
/// one array so that writing a line copies bytes without touching reference counts.
package struct HistogramLineParts: Sendable {
    /// All the parts, back to back.
    let text: [UInt8]
    /// `name_bucket{`
    let bucketPrefix: Range<Int>
    /// Per bucket: `,le="0.1"} `, following a series' labels.
    let bucketSuffixes: [Range<Int>]
    /// Per bucket: `le="0.1"} `, for a series without labels.
    let bareBucketSuffixes: [Range<Int>]
    /// `name_sum` and `name_count`.
    let sumPrefix: Range<Int>
    let countPrefix: Range<Int>
    /// The length of the longest bucket suffix.
    let longestSuffix: Int
    /// The finite bounds as numbers, for the protobuf format (`+Inf` is implied there).
    let upperBounds: [Double]

    /// The parts of family `name` with buckets labelled `boundLabels` (`+Inf` last).
    package init(name: String, boundLabels: [String]) {
        var text: [UInt8] = []
        func add(_ part: String) -> Range<Int> {
            let start = text.count
            text.append(contentsOf: part.utf8)
            return start..<text.count
        }
        bucketPrefix = add(name + "_bucket{")
        bucketSuffixes = boundLabels.map { add(",le=\"\($0)\"} ") }
        bareBucketSuffixes = boundLabels.map { add("le=\"\($0)\"} ") }
        sumPrefix = add(name + "_sum")
        countPrefix = add(name + "_count")
        longestSuffix = bucketSuffixes.map(\.count).max() ?? 0
        upperBounds = boundLabels.compactMap { $0 == "+Inf" ? nil : Double($0) }
        self.text = text
    }
}

/// A series' labels rendered once, when the series is created: `provider="a",model="b"`.
package struct RenderedLabels: Hashable, Sendable {
    /// The text between the braces, without them.
    package let bytes: [UInt8]

    /// No labels.
    package static let none = RenderedLabels(bytes: [])

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Renders name-value pairs in the given order, escaping the values.
    package init(_ pairs: [(name: String, value: String)]) {
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
    package init(_ key: SeriesKey) {
        self.init(Array(zip(key.metric.labelNames, key.labelValues)).map { (name: $0.0, value: $0.1) })
    }
}
