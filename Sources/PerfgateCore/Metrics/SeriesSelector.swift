/// Which series an admin deletion names: a family and label values that must all match.
///
/// A label a family does not have excludes that family, so `endpoint=/old` matches every
/// family's series of `/old` while `provider=openai` matches only the two backend families.
package struct SeriesSelector: Equatable, Sendable {
    /// The family, when one is named.
    package var metric: HistogramMetric?
    /// Label name to required value.
    package var labels: [String: String]

    /// The names a selector may use besides `metric`: every label of every family.
    package static let labelNames: [String] = {
        var names: [String] = []
        for metric in HistogramMetric.allCases {
            for name in metric.labelNames where !names.contains(name) { names.append(name) }
        }
        return names
    }()

    /// A selector; `parse` checks the names, this does not.
    package init(metric: HistogramMetric? = nil, labels: [String: String] = [:]) {
        self.metric = metric
        self.labels = labels
    }

    /// A selector from query parameters such as `endpoint=/old&provider=openai`; at least one is required.
    package static func parse(_ pairs: [(name: String, value: String)]) throws(SeriesSelectorError) -> SeriesSelector {
        guard !pairs.isEmpty else {
            throw SeriesSelectorError("name at least one of metric, \(labelNames.joined(separator: ", ")) (deleting every series needs one selector per family, e.g. metric=backend_ttfb_seconds)")
        }
        var selector = SeriesSelector()
        for (name, value) in pairs {
            if name == "metric" || name == "__name__" {
                guard selector.metric == nil else { throw SeriesSelectorError("give metric once") }
                guard let metric = HistogramMetric(name: value) else {
                    throw SeriesSelectorError("metric \(value) is not one of \(HistogramMetric.allCases.map(\.name).joined(separator: ", "))")
                }
                selector.metric = metric
                continue
            }
            guard labelNames.contains(name) else {
                throw SeriesSelectorError("\(name) is not a label; use metric, \(labelNames.joined(separator: ", "))")
            }
            guard selector.labels[name] == nil else { throw SeriesSelectorError("give \(name) once") }
            selector.labels[name] = value
        }
        if let metric = selector.metric, let foreign = selector.labels.keys.sorted().first(where: { !metric.labelNames.contains($0) }) {
            throw SeriesSelectorError("\(metric.name) has no label \(foreign); its labels are \(metric.labelNames.joined(separator: ", "))")
        }
        return selector
    }

    /// Whether `key` is one of the series selected.
    package func matches(_ key: SeriesKey) -> Bool {
        if let metric, key.metric != metric { return false }
        for (name, value) in labels {
            guard let index = key.metric.labelNames.firstIndex(of: name), key.labelValue(at: index) == value else { return false }
        }
        return true
    }
}

/// A deletion's query that names no series or names them wrongly, and why.
package struct SeriesSelectorError: Error, Equatable, Sendable {
    /// What is wrong.
    package let message: String

    init(_ message: String) {
        self.message = message
    }
}
