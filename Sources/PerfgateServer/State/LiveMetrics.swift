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
        var shares: StageShareWindow
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
        let (samples, shares) = state.withLock { state in
            (state.series.values.map { HistogramSample(key: $0.key, labels: $0.labels, counts: $0.counts) }, state.shares.shares(at: now))
        }
        var histograms: [HistogramMetric: [HistogramSample]] = [:]
        for sample in samples {
            histograms[sample.key.metric, default: []].append(sample)
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
