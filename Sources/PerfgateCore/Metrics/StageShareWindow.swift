/// The groups `stage_percentage` reports, as the seed names them.
package enum StageGroup: String, CaseIterable, Sendable {
    case frontendProcessing = "frontend_processing"
    case backendResponse = "backend_response"
    case streamProcessing = "stream_processing"

    /// The histogram family whose sums make up this group's time.
    package var metric: HistogramMetric {
        switch self {
        case .frontendProcessing: .frontendProcessing
        case .backendResponse: .backendTTFB
        case .streamProcessing: .streamingDuration
        }
    }

    /// The group a family's time belongs to, if any.
    package init?(metric: HistogramMetric) {
        guard let group = Self.allCases.first(where: { $0.metric == metric }) else { return nil }
        self = group
    }
}

/// One endpoint's share of time per group, in percent.
package struct StageShare: Equatable, Sendable {
    /// The endpoint.
    package var endpoint: String
    /// Percent of the endpoint's total stage time, per group, in `StageGroup.allCases` order.
    package var percentages: [Double]

    /// An endpoint's shares.
    package init(endpoint: String, percentages: [Double]) {
        self.endpoint = endpoint
        self.percentages = percentages
    }
}

/// Time per stage group and endpoint over a sliding window of whole minutes, for `stage_percentage`.
///
/// The window holds the current minute and the `width - 1` before it. Each group's share is
/// its time divided by the time of all three groups of that endpoint in the window, so the
/// three add up to 100; an endpoint with no time in the window has no series.
package struct StageShareWindow: Sendable {
    /// The window's width in minutes.
    package let widthMinutes: Int64
    private var minutes: [Minute: [String: [Int128]]] = [:]

    /// An empty window `widthMinutes` wide.
    package init(widthMinutes: Int64) {
        precondition(widthMinutes >= 1, "a window is at least a minute wide")
        self.widthMinutes = widthMinutes
    }

    /// Counts a series-minute's time, if the series feeds a group.
    package mutating func add(series: SeriesKey, minute: Minute, sumNanoseconds: Int128) {
        guard let group = StageGroup(metric: series.metric) else { return }
        let slot = StageGroup.allCases.firstIndex(of: group)!
        minutes[minute, default: [:]][series.endpoint, default: [0, 0, 0]][slot] += sumNanoseconds
    }

    /// Takes back a series-minute's time, when the series is deleted.
    package mutating func subtract(series: SeriesKey, minute: Minute, sumNanoseconds: Int128) {
        guard let group = StageGroup(metric: series.metric), var sums = minutes[minute]?[series.endpoint] else { return }
        let slot = StageGroup.allCases.firstIndex(of: group)!
        sums[slot] = max(0, sums[slot] - sumNanoseconds)
        minutes[minute]![series.endpoint] = sums.allSatisfy { $0 == 0 } ? nil : sums
    }

    /// The oldest minute a window ending at `now` holds.
    package func firstMinute(at now: Timestamp) -> Minute {
        now.minute.advanced(by: -(widthMinutes - 1))
    }

    /// Forgets minutes that have left the window ending at `now`.
    package mutating func evict(at now: Timestamp) {
        let first = firstMinute(at: now)
        minutes = minutes.filter { $0.key >= first }
    }

    /// Each endpoint's shares over the window ending at `now`, ordered by endpoint.
    package func shares(at now: Timestamp) -> [StageShare] {
        let window = firstMinute(at: now)...now.minute
        var totals: [String: [Int128]] = [:]
        for (minute, endpoints) in minutes where window.contains(minute) {
            for (endpoint, sums) in endpoints {
                var running = totals[endpoint, default: [0, 0, 0]]
                for slot in 0..<3 { running[slot] += sums[slot] }
                totals[endpoint] = running
            }
        }
        return totals.compactMap { endpoint, sums -> StageShare? in
            let total = sums.reduce(0, +)
            guard total > 0 else { return nil }
            return StageShare(endpoint: endpoint, percentages: sums.map { Double($0) / Double(total) * 100 })
        }
        .sorted { $0.endpoint < $1.endpoint }
    }
}
