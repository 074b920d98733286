import PerfgateCore

/// What the status page shows for one window, computed from the stored minute windows and
/// perfgate's own counters.
struct StatusReport: Sendable {
    /// p50, p95 and p99 of one window's counts, in seconds.
    struct Percentiles: Sendable {
        var p50: Double
        var p95: Double
        var p99: Double
        var count: UInt64
    }

    /// One provider/model pair.
    struct PairRow: Sendable {
        var provider: String
        var model: String
        var ttfb: Percentiles?
        var streaming: Percentiles?
        /// p95 of backend TTFB per chart step; nil where the step had no events.
        var ttfbChart: [Double?]
        var streamingChart: [Double?]
        /// Backend TTFB p95 in the same window an hour earlier, with enough events to compare.
        var previousTTFB: Double?
        /// current / previous - 1, when both windows hold enough events.
        var change: Double?
        /// Judged as `/v1/trends` judges it with its default threshold and min_count.
        var degrading = false
    }

    /// The stages the seed names, grouped as the page shows them; other stages show by name.
    enum StageGroup: CaseIterable, Sendable {
        case frontend, backend, streaming

        /// The group a stage of this role falls in; nil for a custom stage.
        init?(_ role: EventDerivation.StageRole) {
            switch role {
            case .frontend: self = .frontend
            case .backendFetch: self = .backend
            case .streamProcessing: self = .streaming
            case .other: return nil
            }
        }

        var name: String {
            switch self {
            case .frontend: "frontend processing"
            case .backend: "backend response"
            case .streaming: "streaming"
            }
        }
    }

    /// One endpoint's time, split by stage group and custom stage.
    struct StageBar: Sendable {
        var endpoint: String
        /// Groups first, in `StageGroup` order, then custom stages by name (`group` nil).
        var segments: [(name: String, group: StageGroup?, seconds: Double, percent: Double)]
        var totalSeconds: Double
    }

    /// perfgate's own state.
    struct Health: Sendable {
        var eventsPerSecond: Double
        var acceptedEvents: UInt64
        var rejected: [(reason: String, count: UInt64)]
        var series: Int
        var storeBytes: Int64
        var uptimeSeconds: Int64
        var version: String
        var unready: String?
        /// What went wrong with the OTLP spans received, in words that say what to change.
        var otlpHints: [String]
        /// OTLP spans received since start.
        var otlpSpans: UInt64
        /// Rows of the store found damaged and skipped, and the first few described.
        var corruptRows: Int
        var corruptExamples: [String]
    }

    /// The comparison with an hour earlier uses `/v1/trends`' defaults (the alert rules' +50%).
    static let comparison = TrendQuery(metric: .backendTTFB)

    let window: StatusWindow
    let windows: [StatusWindow]
    let now: Timestamp
    var pairs: [PairRow]
    /// The pairs the latency table lists (see `listed`), with their charts, by name.
    var listedPairs: [PairRow]
    var stageBars: [StageBar]
    var health: Health

    /// Most pairs the latency table lists: beyond it a page is a dump, not a glance.
    static let maxListedPairs = 50

    /// Positions of the pairs to list: the degrading ones, then the busiest, up to `maxListedPairs`.
    private static func listed(_ pairs: [PairRow]) -> [Int] {
        let order = pairs.indices.sorted { lhs, rhs in
            let (a, b) = (pairs[lhs], pairs[rhs])
            if a.degrading != b.degrading { return a.degrading }
            return (a.ttfb?.count ?? 0) + (a.streaming?.count ?? 0) > (b.ttfb?.count ?? 0) + (b.streaming?.count ?? 0)
        }
        return order.prefix(maxListedPairs).sorted()
    }

    /// The ten pairs with the highest backend TTFB p95.
    var slowest: [PairRow] {
        Array(pairs.filter { $0.ttfb != nil }.sorted { $0.ttfb!.p95 > $1.ttfb!.p95 }.prefix(10))
    }
}

extension StatusReport {
    /// Computes the report for `window` at `now`.
    static func build(_ components: Components, window: StatusWindow, now: Timestamp) async throws -> StatusReport {
        let store = components.store
        let layouts = components.configuration.layouts
        let minutes = window.minutes(at: now)
        let earlier = minutes.lowerBound.advanced(by: -60)...minutes.upperBound.advanced(by: -60)

        // Provider/model pairs over both backend families.
        var pairIndex: [[String]: Int] = [:]
        var pairKeys: [[String]] = []
        var groupsByFamily: [HistogramMetric: [SeriesID: Int]] = [:]
        for metric in [HistogramMetric.backendTTFB, .streamingDuration] {
            for record in components.live.records(of: metric) {
                let pair = Array(record.key.labelValues.prefix(2))
                let index = pairIndex[pair] ?? {
                    pairKeys.append(pair)
                    pairIndex[pair] = pairKeys.count - 1
                    return pairKeys.count - 1
                }()
                groupsByFamily[metric, default: [:]][record.id] = index
            }
        }
        let ttfbGroups = groupsByFamily[.backendTTFB] ?? [:]
        let streamingGroups = groupsByFamily[.streamingDuration] ?? [:]
        let pairCount = pairKeys.count
        // Each pair's whole window first, one slot per pair; the charts' steps only for the pairs
        // listed (at most `maxListedPairs`), so that a day of a thousand pairs costs a thousand
        // slots, not ninety-six thousand. Read at once, as far as the store's readers allow.
        async let ttfbRead = store.groupedTotals(
            of: .backendTTFB, groups: ttfbGroups, groupCount: pairCount, minutes: minutes, stepMinutes: window.minutes
        )
        async let streamingRead = store.groupedTotals(
            of: .streamingDuration, groups: streamingGroups, groupCount: pairCount, minutes: minutes, stepMinutes: window.minutes
        )
        let ttfbEarlier = try await store.groupedTotals(
            of: .backendTTFB, groups: ttfbGroups, groupCount: pairCount, minutes: earlier, stepMinutes: window.minutes
        )
        let (ttfbTotals, streamingTotals) = try await (ttfbRead, streamingRead)

        var pairs: [PairRow] = []
        var groupOfPair: [Int] = []
        for (index, key) in pairKeys.enumerated() {
            let ttfbNow = ttfbTotals[index][0]
            let ttfb = percentiles(ttfbNow, layouts[.backendTTFB])
            let streaming = percentiles(streamingTotals[index][0], layouts[.streamingDuration])
            guard ttfb != nil || streaming != nil else { continue }
            let ttfbThen = ttfbEarlier[index][0]
            var row = PairRow(provider: key[0], model: key[1], ttfb: ttfb, streaming: streaming, ttfbChart: [], streamingChart: [])
            let compared = TrendComparison(
                current: ttfbNow, previous: ttfbThen, quantile: comparison.quantile, threshold: comparison.threshold,
                minCount: comparison.minCount, layout: layouts[.backendTTFB]
            )
            if compared.status == .ok, let change = compared.change {
                row.previousTTFB = compared.previous.quantile
                row.change = change
                row.degrading = compared.degrading
            }
            pairs.append(row)
            groupOfPair.append(index)
        }
        // Charts cost a quantile per step: only the listed pairs get them.
        let listedPositions = listed(pairs)
        var chartGroup: [Int: Int] = [:]
        for (chart, position) in listedPositions.enumerated() { chartGroup[groupOfPair[position]] = chart }
        let ttfbChartGroups = ttfbGroups.compactMapValues { chartGroup[$0] }
        let streamingChartGroups = streamingGroups.compactMapValues { chartGroup[$0] }
        async let ttfbStepsRead = store.groupedTotals(
            of: .backendTTFB, groups: ttfbChartGroups, groupCount: listedPositions.count,
            minutes: minutes, stepMinutes: window.stepMinutes
        )
        let streamingSteps = try await store.groupedTotals(
            of: .streamingDuration, groups: streamingChartGroups, groupCount: listedPositions.count,
            minutes: minutes, stepMinutes: window.stepMinutes
        )
        let ttfbSteps = try await ttfbStepsRead
        var listedPairs = listedPositions.enumerated().map { chart, position in
            var row = pairs[position]
            row.ttfbChart = ttfbSteps[chart].map { percentiles($0, layouts[.backendTTFB])?.p95 }
            row.streamingChart = streamingSteps[chart].map { percentiles($0, layouts[.streamingDuration])?.p95 }
            return row
        }
        listedPairs.sort { ($0.provider, $0.model) < ($1.provider, $1.model) }
        pairs.sort { ($0.provider, $0.model) < ($1.provider, $1.model) }

        return StatusReport(
            window: window,
            windows: StatusWindow.available(retentionMinutes: components.configuration.retentionMinutes),
            now: now,
            pairs: pairs,
            listedPairs: listedPairs,
            stageBars: try await stageBars(components, minutes: minutes, stepMinutes: window.minutes),
            health: try await health(components, now: now)
        )
    }

    private static func stageBars(_ components: Components, minutes: ClosedRange<Minute>, stepMinutes: Int64) async throws -> [StageBar] {
        // One group per (stage, endpoint) series: the family's labels are exactly those.
        let records = components.live.records(of: .requestStageDuration)
        let groups = Dictionary(uniqueKeysWithValues: records.enumerated().map { ($1.id, $0) })
        let totals = try await components.store.groupedTotals(
            of: .requestStageDuration, groups: groups, groupCount: records.count, minutes: minutes, stepMinutes: stepMinutes
        )
        var grouped: [String: [StageGroup: Double]] = [:]
        var custom: [String: [String: Double]] = [:]
        for (index, record) in records.enumerated() {
            let seconds = Double(total(totals[index]).sumNanoseconds) / 1e9
            guard seconds > 0 else { continue }
            let stage = record.key.labelValue(at: 0)
            if let group = StageGroup(EventDerivation.StageRole(name: stage)) {
                grouped[record.key.endpoint, default: [:]][group, default: 0] += seconds
            } else {
                custom[record.key.endpoint, default: [:]][stage, default: 0] += seconds
            }
        }
        return Set(grouped.keys).union(custom.keys).sorted().map { endpoint in
            let groups = StageGroup.allCases.compactMap { group in grouped[endpoint]?[group].map { (group.name, Optional(group), $0) } }
            let named = (custom[endpoint] ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, StageGroup?.none, $0.value) }
            let parts = groups + named
            let total = parts.reduce(0) { $0 + $1.2 }
            return StageBar(
                endpoint: endpoint,
                segments: parts.map { (name: $0.0, group: $0.1, seconds: $0.2, percent: $0.2 / total * 100) },
                totalSeconds: total
            )
        }
    }

    private static func health(_ components: Components, now: Timestamp) async throws -> Health {
        let metrics = components.selfMetrics
        let storeBytes = try await components.store.sizeInBytes()
        // One read of the counters, so the hints and the total agree.
        let otlp = metrics.otlpCounts
        return Health(
            eventsPerSecond: metrics.acceptedRate(at: now),
            acceptedEvents: metrics.acceptedEvents,
            rejected: metrics.rejectedEvents(),
            series: HistogramMetric.allCases.reduce(0) { $0 + components.live.records(of: $1).count },
            storeBytes: storeBytes,
            uptimeSeconds: (now.nanoseconds - metrics.startTime.nanoseconds) / 1_000_000_000,
            version: metrics.version,
            unready: components.queue.unreadyReason()?.detail,
            otlpHints: otlpHints(otlp),
            otlpSpans: otlp.received,
            corruptRows: components.store.corruptRows.count,
            corruptExamples: components.store.corruptRows.examples
        )
    }

    /// Why OTLP spans came to nothing, most telling first: each with what to change.
    static func otlpHints(_ counts: SelfMetrics.OTLPCounts) -> [String] {
        var hints: [String] = []
        if counts.withoutStages > 0 {
            hints.append("\(counts.withoutStages) traces named no stage and held no model call: spans arrive but name no stage. Instrument the model call (its span carries gen_ai.operation.name) or name stage spans with perfgate.stage.")
        }
        if let lost = counts.refused[.noEndpoint], lost > 0 {
            hints.append("\(lost) spans of traces without an endpoint: stage spans whose context was lost (started after the request's context was gone, as in a streaming generator) begin traces of their own. Attach the request's context where they start, or set perfgate.endpoint.")
        }
        if counts.dropped > 0 {
            hints.append("\(counts.dropped) spans dropped: their trace's root span did not arrive within --trace-wait (a root exported elsewhere, or never ended).")
        }
        if let full = counts.refused[.waitingFull], full > 0 {
            hints.append("\(full) spans refused because --max-waiting-spans or --max-waiting-bytes was reached.")
        }
        for reason in TraceRefusal.allCases where reason != .noEndpoint && reason != .waitingFull {
            if let count = counts.refused[reason], count > 0 { hints.append("\(count) spans refused: \(reason.rawValue) (perfgate_otlp_spans_refused_total says which rule).") }
        }
        return hints
    }

    /// The sum of a group's steps (every store returns each step in the family's layout).
    private static func total(_ steps: [HistogramCounts]) -> HistogramCounts {
        steps.dropFirst().reduce(into: steps[0]) { $0.add($1) }
    }

    private static func percentiles(_ counts: HistogramCounts, _ layout: BucketLayout) -> Percentiles? {
        guard counts.count > 0 else { return nil }
        // The finest buckets that hold every observation: exponential, unless the window reaches
        // back to counts stored before perfgate kept them.
        let resolution = QuantileResolution.common(counts)
        return Percentiles(
            p50: counts.quantile(0.5, at: resolution, layout: layout),
            p95: counts.quantile(0.95, at: resolution, layout: layout),
            p99: counts.quantile(0.99, at: resolution, layout: layout),
            count: counts.count
        )
    }
}
