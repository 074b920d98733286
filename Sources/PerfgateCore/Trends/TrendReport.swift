/// The answer to a `TrendQuery`: per label group, the quantile now and `offset` ago.
package struct TrendReport: Sendable {
    /// One window's figures for a group.
    package struct WindowFigures: Equatable, Sendable {
        /// Events in the window.
        package var count: UInt64
        /// The estimated quantile in seconds; nil with no events.
        package var quantile: Double?
    }

    /// Whether a group's comparison means anything.
    package enum Status: Equatable, Sendable {
        case ok
        /// A window held fewer events than `min_count`; the reason says which.
        case insufficientData(reason: String)
    }

    /// One label group's comparison.
    package struct Group: Equatable, Sendable {
        /// The grouping labels and their values, in `by` order.
        package var labels: [(name: String, value: String)]
        /// The current window.
        package var current: WindowFigures
        /// The window `offset` ago.
        package var previous: WindowFigures
        /// `(current - previous) / previous`; nil when not comparable.
        package var change: Double?
        /// True when the quantile rose by more than the threshold.
        package var degrading: Bool
        /// Whether there was enough data.
        package var status: Status
        /// The buckets both windows' quantiles come from: exponential, or classic when a window
        /// holds counts stored before perfgate kept exponential buckets.
        package var resolution: QuantileResolution

        package static func == (lhs: Group, rhs: Group) -> Bool {
            lhs.labels.map(\.name) == rhs.labels.map(\.name) && lhs.labels.map(\.value) == rhs.labels.map(\.value)
                && lhs.current == rhs.current && lhs.previous == rhs.previous && lhs.change == rhs.change
                && lhs.degrading == rhs.degrading && lhs.status == rhs.status && lhs.resolution == rhs.resolution
        }
    }

    /// The question answered.
    package var query: TrendQuery
    /// When it was answered.
    package var now: Timestamp
    /// The groups, ordered by label values.
    package var groups: [Group]

    /// Compares the two windows' counts of the series matching `query`, grouped by its `by` labels.
    package init(
        query: TrendQuery,
        now: Timestamp,
        series: [SeriesRecord],
        current: [SeriesID: HistogramCounts],
        previous: [SeriesID: HistogramCounts],
        layout: BucketLayout
    ) {
        self.query = query
        self.now = now
        let labelIndices = query.groupBy.map { query.metric.labelNames.firstIndex(of: $0)! }
        var merged: [[String]: (current: HistogramCounts, previous: HistogramCounts)] = [:]
        let empty = HistogramCounts(bucketCount: layout.bucketCount)
        for record in series where query.matches(record.key) {
            let currentCounts = current[record.id]
            let previousCounts = previous[record.id]
            guard currentCounts != nil || previousCounts != nil else { continue }
            let groupKey = labelIndices.map(record.key.labelValue(at:))
            var entry = merged[groupKey] ?? (empty, empty)
            if let currentCounts { entry.current.add(currentCounts) }
            if let previousCounts { entry.previous.add(previousCounts) }
            merged[groupKey] = entry
        }
        groups = merged.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { groupKey, counts in
            Self.compare(
                labels: Array(zip(query.groupBy, groupKey)).map { (name: $0.0, value: $0.1) },
                current: counts.current,
                previous: counts.previous,
                query: query,
                layout: layout
            )
        }
    }

    private static func compare(
        labels: [(name: String, value: String)],
        current: HistogramCounts,
        previous: HistogramCounts,
        query: TrendQuery,
        layout: BucketLayout
    ) -> Group {
        let comparison = TrendComparison(
            current: current, previous: previous, quantile: query.quantile, threshold: query.threshold, minCount: query.minCount, layout: layout
        )
        return Group(
            labels: labels, current: comparison.current, previous: comparison.previous, change: comparison.change,
            degrading: comparison.degrading, status: comparison.status, resolution: comparison.resolution
        )
    }

    /// The report as the JSON body of `/v1/trends`.
    package func json() -> [UInt8] {
        var writer = JSONWriter()
        let currentMinutes = query.currentMinutes(at: now)
        let previousMinutes = query.previousMinutes(at: now)
        writer.object { w in
            w.member("metric", query.metric.name)
            w.member("quantile", query.quantile)
            w.member("window", DurationText.format(seconds: query.windowMinutes * 60))
            w.member("offset", DurationText.format(seconds: query.offsetMinutes * 60))
            w.key("by")
            w.array { w in query.groupBy.forEach { w.string($0) } }
            w.member("threshold", query.threshold)
            w.member("min_count", query.minCount)
            // The windows are summed in whole minutes, the current one included, so their
            // bounds are minute edges: what was summed, not the instant of the request.
            w.key("current_window")
            Self.writeRange(&w, currentMinutes)
            w.key("previous_window")
            Self.writeRange(&w, previousMinutes)
            w.key("groups")
            w.array { w in
                for group in groups {
                    w.object { w in
                        w.key("labels")
                        w.object { w in group.labels.forEach { w.member($0.name, $0.value) } }
                        w.key("current")
                        Self.writeFigures(&w, group.current)
                        w.key("previous")
                        Self.writeFigures(&w, group.previous)
                        w.member("change", group.change)
                        w.member("degrading", group.degrading)
                        w.member("resolution", group.resolution.rawValue)
                        switch group.status {
                        case .ok:
                            w.member("status", "ok")
                        case .insufficientData(let reason):
                            w.member("status", "insufficient_data")
                            w.member("reason", reason)
                        }
                    }
                }
            }
        }
        return writer.bytes
    }

    private static func writeRange(_ writer: inout JSONWriter, _ minutes: ClosedRange<Minute>) {
        writer.object { w in
            w.member("start", RFC3339.format(minutes.lowerBound.start))
            w.member("end", RFC3339.format(minutes.upperBound.advanced(by: 1).start))
        }
    }

    private static func writeFigures(_ writer: inout JSONWriter, _ figures: WindowFigures) {
        writer.object { w in
            w.member("count", figures.count)
            w.member("quantile", figures.quantile)
        }
    }
}

/// A quantile of two windows compared, as `/v1/trends` and the status page both judge it: at
/// one resolution for both windows, not at all when either holds fewer than `minCount` events,
/// and degrading when now exceeds (1 + threshold) × then, the comparison the alert rules make.
package struct TrendComparison {
    package var current: TrendReport.WindowFigures
    package var previous: TrendReport.WindowFigures
    /// `(current - previous) / previous`; nil when not compared.
    package var change: Double?
    package var degrading = false
    package var status: TrendReport.Status = .ok
    package var resolution: QuantileResolution

    package init(current: HistogramCounts, previous: HistogramCounts, quantile: Double, threshold: Double, minCount: UInt64, layout: BucketLayout) {
        // Both windows at one resolution, so a change is never an artefact of comparing two.
        let resolution = QuantileResolution.common(current, previous)
        func figures(_ counts: HistogramCounts) -> TrendReport.WindowFigures {
            let count = counts.count
            let value = counts.quantile(quantile, at: resolution, layout: layout)
            return TrendReport.WindowFigures(count: count, quantile: count > 0 && value.isFinite ? value : nil)
        }
        self.resolution = resolution
        self.current = figures(current)
        self.previous = figures(previous)
        var shortWindows: [String] = []
        if self.current.count < minCount { shortWindows.append("the current window holds \(self.current.count)") }
        if self.previous.count < minCount { shortWindows.append("the previous window holds \(self.previous.count)") }
        guard shortWindows.isEmpty, let now = self.current.quantile, let then = self.previous.quantile else {
            status = .insufficientData(reason: shortWindows.joined(separator: " and ") + " events; min_count is \(minCount)")
            return
        }
        change = then > 0 ? (now - then) / then : nil
        degrading = now > (1 + threshold) * then
    }
}
