import PerfgateCore

/// How every store writes a series' label values as one text column, and reads them back.
enum SeriesText {
    /// Between label values; label values cannot hold it.
    static let separator: Character = "\u{1F}"

    /// The label values as one text.
    static func joined(_ values: [String]) -> String {
        values.joined(separator: String(separator))
    }

    /// The series a stored row names, or why the row is damaged.
    static func key(metric name: String, labelValues: String, id: SeriesID) throws -> SeriesKey {
        guard let metric = HistogramMetric(name: name) else {
            throw StoreError.damagedRow("series \(id) has unknown metric \(name)")
        }
        let values = labelValues.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
        guard values.count == metric.labelNames.count else {
            throw StoreError.damagedRow("series \(id) has \(values.count) label values, \(metric.name) has \(metric.labelNames.count) labels")
        }
        return SeriesKey(metric, values)
    }
}
