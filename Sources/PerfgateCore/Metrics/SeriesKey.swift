/// One series of a histogram family: the family and its label values, in `labelNames` order.
package struct SeriesKey: Hashable, Sendable, Comparable {
    /// The family.
    package var metric: HistogramMetric
    /// The label values, one per `metric.labelNames`.
    package var labelValues: [String]

    /// A series from its family and label values.
    package init(_ metric: HistogramMetric, _ labelValues: [String]) {
        precondition(labelValues.count == metric.labelNames.count, "one value per label of \(metric.name)")
        self.metric = metric
        self.labelValues = labelValues
    }

    /// The label value every label of a series takes once its family has too many series.
    package static let overflowValue = "__overflow__"

    /// The series that collects everything past a family's series limit.
    package static func overflow(of metric: HistogramMetric) -> SeriesKey {
        SeriesKey(metric, Array(repeating: overflowValue, count: metric.labelNames.count))
    }

    /// The value of a label, by name.
    package func value(of label: String) -> String? {
        metric.labelNames.firstIndex(of: label).map { labelValues[$0] }
    }

    /// The endpoint this series belongs to.
    package var endpoint: String { labelValues[metric.endpointLabelIndex] }

    package static func < (lhs: SeriesKey, rhs: SeriesKey) -> Bool {
        if lhs.metric != rhs.metric { return lhs.metric < rhs.metric }
        return lhs.labelValues.lexicographicallyPrecedes(rhs.labelValues)
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
        for value in labelValues { mix(value) }
        let id = SeriesID(bitPattern: hash & UInt64(Int64.max))
        return id == 0 ? 1 : id
    }
}
