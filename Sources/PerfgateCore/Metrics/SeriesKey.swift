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
    /// The identifier a shared store knows this series by: a 63-bit FNV-1a hash of the family name
    /// and the label values, each ended by U+001F, so that every replica and every release names
    /// a series alike without asking the others. Never 0.
    package var sharedID: SeriesID {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ text: String) {
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
            hash ^= 0x1F
            hash &*= 0x0000_0100_0000_01b3
        }
        mix(metric.name)
        for index in 0..<metric.labelCount { mix(labelValue(at: index)) }
        let id = SeriesID(bitPattern: hash & UInt64(Int64.max))
        return id == 0 ? 1 : id
    }
}
