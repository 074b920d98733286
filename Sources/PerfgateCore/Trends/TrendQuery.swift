/// A validated `/v1/trends` question: a quantile of one family now versus `offset` ago.
package struct TrendQuery: Equatable, Sendable {
    /// The histogram family.
    package var metric: HistogramMetric
    /// The quantile, 0 to 1.
    package var quantile: Double = 0.95
    /// The window's width, in whole minutes.
    package var windowMinutes: Int64 = 5
    /// How far back the comparison window lies, in whole minutes.
    package var offsetMinutes: Int64 = 60
    /// The labels to group by, in the order given.
    package var groupBy: [String] = []
    /// Label values to keep, per label; a series matches when each filtered label has one of its values.
    package var filters: [String: Set<String>] = [:]
    /// The relative increase above which a group is `degrading` (0.5 is +50%).
    package var threshold: Double = 0.5
    /// The fewest events a window needs for its quantile to be compared.
    package var minCount: UInt64 = 10

    /// A query with the defaults for `metric`.
    package init(metric: HistogramMetric) {
        self.metric = metric
    }

    /// The parameters the endpoint understands, besides label filters.
    package static let parameterNames = ["metric", "quantile", "window", "offset", "by", "threshold", "min_count"]

    /// Reads query parameters; `retentionMinutes` bounds how far back the windows may reach.
    package static func parse(_ parameters: [(name: String, value: String)], retentionMinutes: Int64) throws(TrendQueryError) -> TrendQuery {
        var seen: Set<String> = []
        var values: [String: String] = [:]
        var filterValues: [(String, String)] = []
        for (name, value) in parameters {
            if parameterNames.contains(name) {
                guard seen.insert(name).inserted else { throw TrendQueryError("\(name) appears more than once") }
                values[name] = value
            } else {
                filterValues.append((name, value))
            }
        }

        guard let metricName = values["metric"] else {
            throw TrendQueryError("metric is required: one of \(HistogramMetric.allCases.map(\.name).joined(separator: ", "))")
        }
        guard let metric = HistogramMetric(name: metricName) else {
            if metricName == "stage_percentage" {
                throw TrendQueryError("stage_percentage is a gauge; trends compare quantiles of the histograms: \(HistogramMetric.allCases.map(\.name).joined(separator: ", "))")
            }
            throw TrendQueryError("unknown metric \(EventRules.quoted(metricName)); use one of \(HistogramMetric.allCases.map(\.name).joined(separator: ", "))")
        }
        var query = TrendQuery(metric: metric)

        if let text = values["quantile"] {
            guard let q = Double(text), q.isFinite, (0...1).contains(q) else {
                throw TrendQueryError("quantile must be a number from 0 to 1 (got \(EventRules.quoted(text)))")
            }
            query.quantile = q
        }
        if let text = values["window"] { query.windowMinutes = try minutes(text, name: "window") }
        if let text = values["offset"] { query.offsetMinutes = try minutes(text, name: "offset") }
        let reach = query.windowMinutes + query.offsetMinutes
        if reach > retentionMinutes {
            throw TrendQueryError(
                "window plus offset reaches back \(DurationText.format(seconds: reach * 60)), beyond the retention of \(DurationText.format(seconds: retentionMinutes * 60))"
            )
        }
        if let text = values["by"], !text.isEmpty {
            for label in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
                guard metric.labelNames.contains(label) else {
                    throw TrendQueryError("cannot group \(metric.name) by \(EventRules.quoted(label)); its labels are \(metric.labelNames.joined(separator: ", "))")
                }
                guard !query.groupBy.contains(label) else { throw TrendQueryError("by names \(label) twice") }
                query.groupBy.append(label)
            }
        }
        if let text = values["threshold"] {
            guard let threshold = Double(text), threshold.isFinite, threshold >= 0 else {
                throw TrendQueryError("threshold must be a number ≥ 0, the relative increase that counts as degrading (0.5 = +50%) (got \(EventRules.quoted(text)))")
            }
            query.threshold = threshold
        }
        if let text = values["min_count"] {
            guard let count = UInt64(text), count >= 1 else {
                throw TrendQueryError("min_count must be a whole number ≥ 1 (got \(EventRules.quoted(text)))")
            }
            query.minCount = count
        }
        for (label, value) in filterValues {
            guard metric.labelNames.contains(label) else {
                throw TrendQueryError(
                    "unknown parameter \(EventRules.quoted(label)); use \(parameterNames.joined(separator: ", ")) or a label of \(metric.name) (\(metric.labelNames.joined(separator: ", ")))"
                )
            }
            query.filters[label, default: []].insert(value)
        }
        return query
    }

    private static func minutes(_ text: String, name: String) throws(TrendQueryError) -> Int64 {
        guard let minutes = DurationText.wholeMinutes(text) else {
            throw TrendQueryError("\(name) must be whole minutes such as 5m, 1h or 1h30m (got \(EventRules.quoted(text)))")
        }
        return minutes
    }

    /// True when a series passes the label filters.
    package func matches(_ key: SeriesKey) -> Bool {
        guard key.metric == metric else { return false }
        for (label, allowed) in filters {
            guard let value = key.value(of: label), allowed.contains(value) else { return false }
        }
        return true
    }

    /// The minutes of the current window ending at `now`.
    package func currentMinutes(at now: Timestamp) -> ClosedRange<Minute> {
        now.minute.advanced(by: -(windowMinutes - 1))...now.minute
    }

    /// The minutes of the comparison window: the current one moved back by the offset.
    package func previousMinutes(at now: Timestamp) -> ClosedRange<Minute> {
        let current = currentMinutes(at: now)
        return current.lowerBound.advanced(by: -offsetMinutes)...current.upperBound.advanced(by: -offsetMinutes)
    }
}

/// A `/v1/trends` query that cannot be answered as asked, and why.
package struct TrendQueryError: Error, Equatable, Sendable {
    /// What is wrong with the query.
    package let message: String

    init(_ message: String) {
        self.message = message
    }
}
