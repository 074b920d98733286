import PerfgateCore
import Synchronization

/// The cumulative counts `/metrics` shows and the `stage_percentage` window, for committed data only.
///
/// The writer applies each commit after it is durable, under one short lock; scrapes copy a
/// snapshot under the same lock and render it outside.
final class LiveMetrics: Sendable {
    private struct State {
        /// Per family, by raw value.
        var families: [OrderedSeries] = HistogramMetric.allCases.map { _ in OrderedSeries() }
        var shares: StageShareWindow
        /// Which family each series is in.
        var metrics: [SeriesID: HistogramMetric] = [:]

        mutating func add(_ rollup: MinuteRollup) {
            guard let metric = metrics[rollup.seriesID],
                let key = families[metric.rawValue].add(rollup.counts, to: rollup.seriesID)
            else { return }
            shares.add(series: key, minute: rollup.minute, sumNanoseconds: rollup.counts.sumNanoseconds)
        }

        mutating func insert(_ added: [(id: SeriesID, sample: HistogramSample)]) {
            for (id, sample) in added { metrics[id] = sample.key.metric }
            for metric in HistogramMetric.allCases {
                families[metric.rawValue].insert(added.filter { $0.sample.key.metric == metric })
            }
        }
    }

    private let state: Mutex<State>
    private let layouts: BucketLayouts
    private let shareWindowMinutes: Int64

    init(layouts: BucketLayouts, shareWindowMinutes: Int64) {
        self.layouts = layouts
        self.shareWindowMinutes = shareWindowMinutes
        state = Mutex(State(shares: StageShareWindow(widthMinutes: shareWindowMinutes)))
    }

    /// Loads what the store held at start-up.
    func restore(_ restored: RestoredState) {
        let series = restored.series.map { record in
            let counts = restored.totals[record.id] ?? HistogramCounts(bucketCount: layouts[record.key.metric].bucketCount)
            return (id: record.id, sample: HistogramSample(key: record.key, labels: RenderedLabels(record.key), counts: counts))
        }
        state.withLock { state in
            state.insert(series)
            for rollup in restored.recent {
                // The totals already hold these counts: only the stage share window takes them.
                guard let metric = state.metrics[rollup.seriesID], let sample = state.families[metric.rawValue].sample(of: rollup.seriesID) else { continue }
                state.shares.add(series: sample.key, minute: rollup.minute, sumNanoseconds: rollup.counts.sumNanoseconds)
            }
        }
    }

    /// Adds a committed batch: its new series (labels already rendered) and its rollups.
    func apply(newSeries: [(record: SeriesRecord, labels: RenderedLabels)], rollups: [MinuteRollup], now: Timestamp) {
        let added = newSeries.map { record, labels in
            (id: record.id, sample: HistogramSample(key: record.key, labels: labels, counts: HistogramCounts(bucketCount: layouts[record.key.metric].bucketCount)))
        }
        state.withLock { state in
            state.insert(added)
            for rollup in rollups { state.add(rollup) }
            state.shares.evict(at: now)
        }
    }

    /// Sets the cumulative counts of the series in `totals` to those; returns how many changed.
    func settle(_ totals: [SeriesID: HistogramCounts]) -> Int {
        state.withLock { state in
            var changed = 0
            for (id, counts) in totals {
                guard let metric = state.metrics[id], state.families[metric.rawValue].replace(counts, of: id) else { continue }
                changed += 1
            }
            return changed
        }
    }

    /// Replaces the `stage_percentage` window with every replica's time (from a shared store), so
    /// that every replica shows the same shares.
    func replaceShares(_ sums: [SeriesMinuteSum], now: Timestamp) {
        state.withLock { state in
            var shares = StageShareWindow(widthMinutes: shareWindowMinutes)
            for sum in sums {
                guard let metric = state.metrics[sum.seriesID], let sample = state.families[metric.rawValue].sample(of: sum.seriesID) else { continue }
                shares.add(series: sample.key, minute: sum.minute, sumNanoseconds: sum.sumNanoseconds)
            }
            shares.evict(at: now)
            state.shares = shares
        }
    }

    /// The first minute of the `stage_percentage` window at `now`.
    func shareWindowStart(at now: Timestamp) -> Minute {
        state.withLock { $0.shares.firstMinute(at: now) }
    }

    /// Drops deleted series, and takes their `recent` rollups back out of the share window.
    func remove(_ ids: Set<SeriesID>, recent: [MinuteRollup]) {
        state.withLock { state in
            for rollup in recent {
                guard let metric = state.metrics[rollup.seriesID], let sample = state.families[metric.rawValue].sample(of: rollup.seriesID) else { continue }
                state.shares.subtract(series: sample.key, minute: rollup.minute, sumNanoseconds: rollup.counts.sumNanoseconds)
            }
            for metric in HistogramMetric.allCases { state.families[metric.rawValue].remove(ids) }
            for id in ids { state.metrics[id] = nil }
        }
    }

    /// A copy of everything the seed's families show at `now`.
    func snapshot(at now: Timestamp) -> SeedMetricsSnapshot {
        // Constant time under the lock: the arrays are shared, not copied, until the writer
        // next changes them.
        let (families, shares) = state.withLock { state in (state.families, state.shares.shares(at: now)) }
        var histograms: [HistogramMetric: [HistogramSample]] = [:]
        for metric in HistogramMetric.allCases { histograms[metric] = families[metric.rawValue].samples }
        return SeedMetricsSnapshot(
            histograms: histograms,
            shares: shares,
            shareWindowMinutes: shareWindowMinutes,
            layouts: layouts,
            inOrder: true
        )
    }

    /// Every series of a family, for the trend endpoint.
    func records(of metric: HistogramMetric) -> [SeriesRecord] {
        let family = state.withLock { $0.families[metric.rawValue] }
        return zip(family.ids, family.samples).map { SeriesRecord(id: $0, key: $1.key) }
    }
}
