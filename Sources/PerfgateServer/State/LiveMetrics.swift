import PerfgateCore
import Synchronization

/// The cumulative counts `/metrics` shows and the `stage_percentage` window, for committed data only.
///
/// The writer applies each commit after it is durable, under one short lock; scrapes copy a
/// snapshot under the same lock and render it outside.
final class LiveMetrics: Sendable {
    struct Series {
        let key: SeriesKey
        let labels: RenderedLabels
        var counts: HistogramCounts
    }

    private struct State {
        var series: [SeriesID: Series] = [:]
        /// Per family (by raw value), its series in `SeriesKey` order: kept sorted as series are
        /// added (rarely) so that a scrape (often) does not sort 10,000 keys.
        var order: [[SeriesID]] = HistogramMetric.allCases.map { _ in [] }
        var shares: StageShareWindow

        mutating func insertInOrder(_ id: SeriesID, key: SeriesKey) {
            let ids = order[key.metric.rawValue]
            var low = 0
            var high = ids.count
            while low < high {
                let middle = (low + high) / 2
                if series[ids[middle]]!.key < key { low = middle + 1 } else { high = middle }
            }
            order[key.metric.rawValue].insert(id, at: low)
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
            return (record.id, Series(key: record.key, labels: RenderedLabels(record.key), counts: counts))
        }
        state.withLock { state in
            state.series = Dictionary(uniqueKeysWithValues: series)
            for metric in HistogramMetric.allCases {
                state.order[metric.rawValue] = series.filter { $0.1.key.metric == metric }.sorted { $0.1.key < $1.1.key }.map(\.0)
            }
            for rollup in restored.recent {
                guard let key = state.series[rollup.seriesID]?.key else { continue }
                state.shares.add(series: key, minute: rollup.minute, sumNanoseconds: rollup.counts.sumNanoseconds)
            }
        }
    }

    /// Adds a committed batch: its new series (labels already rendered) and its rollups.
    func apply(newSeries: [(record: SeriesRecord, labels: RenderedLabels)], rollups: [MinuteRollup], now: Timestamp) {
        state.withLock { state in
            for (record, labels) in newSeries {
                let empty = HistogramCounts(bucketCount: layouts[record.key.metric].bucketCount)
                state.series[record.id] = Series(key: record.key, labels: labels, counts: empty)
                state.insertInOrder(record.id, key: record.key)
            }
            for rollup in rollups {
                guard let key = state.series[rollup.seriesID]?.key else { continue }
                state.series[rollup.seriesID]!.counts.add(rollup.counts)
                state.shares.add(series: key, minute: rollup.minute, sumNanoseconds: rollup.counts.sumNanoseconds)
            }
            state.shares.evict(at: now)
        }
    }

    /// A copy of everything the seed's families show at `now`.
    func snapshot(at now: Timestamp) -> SeedMetricsSnapshot {
        let (histograms, shares) = state.withLock { state in
            var histograms: [HistogramMetric: [HistogramSample]] = [:]
            for metric in HistogramMetric.allCases {
                histograms[metric] = state.order[metric.rawValue].map { id in
                    let series = state.series[id]!
                    return HistogramSample(key: series.key, labels: series.labels, counts: series.counts)
                }
            }
            return (histograms, state.shares.shares(at: now))
        }
        return SeedMetricsSnapshot(
            histograms: histograms,
            shares: shares,
            shareWindowMinutes: shareWindowMinutes,
            layouts: layouts
        )
    }

    /// Every series of a family, for the trend endpoint.
    func records(of metric: HistogramMetric) -> [SeriesRecord] {
        state.withLock { state in
            state.series.compactMap { id, series in series.key.metric == metric ? SeriesRecord(id: id, key: series.key) : nil }
        }
    }
}
