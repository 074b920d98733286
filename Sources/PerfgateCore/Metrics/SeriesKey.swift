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
