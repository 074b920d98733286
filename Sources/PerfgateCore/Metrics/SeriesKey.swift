/// One series of a histogram family: the family and its label values, in `labelNames` order.
///
/// The values are kept inline (a family has at most three labels), so that naming a series
/// allocates nothing: ingest names eight series per event, and an array each was a third of a
/// one-event body's allocations.
package struct SeriesKey: Hashable, Sendable, Comparable {
    /// The family.
    package let metric: HistogramMetric
    // The label values in order; "" past the family's labels.
    private let first: String
    private let second: String
    private let third: String
    // Hashed once, where the key is made: the writer looks up every event's series by key, and
    // hashing their label text there lengthened each commit that requests wait on.
    private let hashCode: Int

    /// A series from its family and label values.
    package init(_ metric: HistogramMetric, _ labelValues: [String]) {
        precondition(labelValues.count == metric.labelCount, "one value per label of \(metric.name)")
        self.init(metric, labelValues[0], labelValues.count > 1 ? labelValues[1] : "", labelValues.count > 2 ? labelValues[2] : "")
    }

    /// A series from its family and its label values in order, as many as the family has labels.
    package init(_ metric: HistogramMetric, _ first: String, _ second: String = "", _ third: String = "") {
        self.metric = metric
        self.first = first
        self.second = second
        self.third = third
        var hasher = Hasher()
        hasher.combine(metric)
        hasher.combine(first)
        hasher.combine(second)
        hasher.combine(third)
        hashCode = hasher.finalize()
    }

    package static func == (lhs: SeriesKey, rhs: SeriesKey) -> Bool {
        lhs.hashCode == rhs.hashCode && lhs.metric == rhs.metric && lhs.first == rhs.first && lhs.second == rhs.second && lhs.third == rhs.third
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(hashCode)
    }

    /// The label values, one per `metric.labelNames`.
    package var labelValues: [String] {
        (0..<metric.labelCount).map(labelValue(at:))
    }

    /// The value of the label at `index` in `metric.labelNames`.
    package func labelValue(at index: Int) -> String {
        switch index {
        case 0: first
        case 1: second
        default: third
        }
    }

    /// The label value every label of a series takes once its family has too many series.
    package static let overflowValue = "__overflow__"

    /// The series that collects everything past a family's series limit.
    package static func overflow(of metric: HistogramMetric) -> SeriesKey {
        SeriesKey(metric, Array(repeating: overflowValue, count: metric.labelCount))
    }

    /// The value of a label, by name.
    package func value(of label: String) -> String? {
        metric.labelNames.firstIndex(of: label).map(labelValue(at:))
    }

    /// The endpoint this series belongs to.
    package var endpoint: String { labelValue(at: metric.endpointLabelIndex) }

    // Label values in order, as arrays of them compare (unused ones are "" in both).
    package static func < (lhs: SeriesKey, rhs: SeriesKey) -> Bool {
        if lhs.metric != rhs.metric { return lhs.metric < rhs.metric }
        if lhs.first != rhs.first { return lhs.first < rhs.first }
        if lhs.second != rhs.second { return lhs.second < rhs.second }
        return lhs.third < rhs.third
    }
}

extension SeriesKey {
    /// The identifier a shared store knows this series by: SipHash-2-4, keyed by the database's
    /// secret, of the family name and the label values, each ended by U+001F, top bit cleared;
    /// never 0. Every replica of a database names a series alike without asking the others, and
    /// nobody without the secret can choose labels whose identifier collides with another's.
    package func sharedID(keyedBy key: SeriesIDKey) -> SeriesID {
        var hash = SipHash24(key: key)
        func mix(_ text: String) {
            for byte in text.utf8 { hash.append(byte) }
            hash.append(0x1F)
        }
        mix(metric.name)
        for index in 0..<metric.labelCount { mix(labelValue(at: index)) }
        let id = SeriesID(bitPattern: hash.finish() & UInt64(Int64.max))
        return id == 0 ? 1 : id
    }
}

/// The 128-bit secret a shared store keys its series identifiers with.
package struct SeriesIDKey: Equatable, Sendable {
    let k0: UInt64
    let k1: UInt64

    /// A key from its 16 bytes; nil for another length.
    package init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        let words = bytes.enumerated().reduce(into: (UInt64(0), UInt64(0))) { words, pair in
            if pair.offset < 8 { words.0 |= UInt64(pair.element) << (8 * pair.offset) } else { words.1 |= UInt64(pair.element) << (8 * (pair.offset - 8)) }
        }
        k0 = words.0
        k1 = words.1
    }
}

/// SipHash-2-4 (Aumasson and Bernstein), fed a byte at a time.
package struct SipHash24 {
    private var v0: UInt64
    private var v1: UInt64
    private var v2: UInt64
    private var v3: UInt64
    private var pending: UInt64 = 0
    private var length = 0

    package init(key: SeriesIDKey) {
        v0 = 0x736f_6d65_7073_6575 ^ key.k0
        v1 = 0x646f_7261_6e64_6f6d ^ key.k1
        v2 = 0x6c79_6765_6e65_7261 ^ key.k0
        v3 = 0x7465_6462_7974_6573 ^ key.k1
    }

    package mutating func append(_ byte: UInt8) {
        pending |= UInt64(byte) << (8 * UInt64(length & 7))
        length += 1
        if length & 7 == 0 {
            compress(pending)
            pending = 0
        }
    }

    package mutating func finish() -> UInt64 {
        compress(UInt64(truncatingIfNeeded: length) << 56 | pending)
        v2 ^= 0xff
        for _ in 0..<4 { round() }
        return v0 ^ v1 ^ v2 ^ v3
    }

    private mutating func compress(_ word: UInt64) {
        v3 ^= word
        round()
        round()
        v0 ^= word
    }

    private mutating func round() {
        v0 &+= v1
        v1 = v1.rotated(13) ^ v0
        v0 = v0.rotated(32)
        v2 &+= v3
        v3 = v3.rotated(16) ^ v2
        v0 &+= v3
        v3 = v3.rotated(21) ^ v0
        v2 &+= v1
        v1 = v1.rotated(17) ^ v2
        v2 = v2.rotated(32)
    }
}

extension UInt64 {
    fileprivate func rotated(_ bits: UInt64) -> UInt64 {
        self << bits | self >> (64 - bits)
    }
}
