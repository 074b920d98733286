import Logging
import PerfgateCore

/// What a committed request learns besides success: observations folded into overflow series.
struct CommitReceipt: Sendable {
    /// Observations counted under `__overflow__`, per family.
    var overflowed: [HistogramMetric: Int] = [:]
}

/// Why a write was not made; nothing of the request was applied.
enum WriteError: Error, Sendable {
    /// The queue holds as many events as it may.
    case overloaded(queued: Int, capacity: Int)
    /// The service is stopping and takes no more writes.
    case shuttingDown
    /// The store refused the transaction (disk full, I/O error).
    case storeFailed(String)
}

/// Turns queued deltas into one store transaction, then publishes them to `/metrics`.
///
/// Runs on the writer thread only, which is why it may keep the registry without a lock.
final class Committer: @unchecked Sendable {
    private var registry: SeriesRegistry
    private let store: any RollupStore
    private let live: LiveMetrics
    private let selfMetrics: SelfMetrics
    private let clock: any WallClock
    private let logger: Logger

    init(registry: SeriesRegistry, store: any RollupStore, live: LiveMetrics, selfMetrics: SelfMetrics, clock: any WallClock, logger: Logger) {
        self.registry = registry
        self.store = store
        self.live = live
        self.selfMetrics = selfMetrics
        self.clock = clock
        self.logger = logger
    }

    private struct MergeKey: Hashable {
        let series: SeriesID
        let minute: Minute
    }

    /// Writes every delta in one transaction; all are applied or none.
    func commit(_ deltas: [RollupDelta]) -> Result<[CommitReceipt], WriteError> {
        var created: [SeriesRecord] = []
        var merged: [MergeKey: HistogramCounts] = [:]
        var receipts: [CommitReceipt] = []
        var overflowTotal: [HistogramMetric: Int] = [:]
        receipts.reserveCapacity(deltas.count)
        for delta in deltas {
            var receipt = CommitReceipt()
            for (key, counts) in delta.counts {
                let (id, overflowed) = registry.resolve(key.series, created: &created)
                if overflowed {
                    receipt.overflowed[key.series.metric, default: 0] += Int(counts.count)
                }
                let mergeKey = MergeKey(series: id, minute: key.minute)
                if merged[mergeKey] == nil { merged[mergeKey] = counts } else { merged[mergeKey]!.add(counts) }
            }
            for (metric, count) in receipt.overflowed { overflowTotal[metric, default: 0] += count }
            receipts.append(receipt)
        }
        let rollups = merged.map { MinuteRollup(seriesID: $0.key.series, minute: $0.key.minute, counts: $0.value) }

        let started = ContinuousClock.now
        do {
            try store.commit(CommitBatch(newSeries: created, rollups: rollups))
        } catch {
            registry.forget(created)
            selfMetrics.recordCommit(nanoseconds: Self.nanoseconds(since: started), succeeded: false, overflowed: [:])
            logger.error("commit failed; the requests in it were answered 503", metadata: ["store.error": "\(error)", "ingest.requests": "\(deltas.count)"])
            return .failure(.storeFailed(String(describing: error)))
        }
        selfMetrics.recordCommit(nanoseconds: Self.nanoseconds(since: started), succeeded: true, overflowed: overflowTotal)

        // Label text is rendered here, once per new series, outside the lock scrapes take.
        let newSeries = created.map { (record: $0, labels: RenderedLabels($0.key)) }
        live.apply(newSeries: newSeries, rollups: rollups, now: clock.now())
        return .success(receipts)
    }

    /// Folds expired minutes into their series' base.
    func prune(before cutoff: Minute) -> Result<PruneReport, WriteError> {
        do {
            let report = try store.prune(before: cutoff)
            selfMetrics.recordPrune(report)
            return .success(report)
        } catch {
            logger.error("prune failed", metadata: ["store.error": "\(error)"])
            return .failure(.storeFailed(String(describing: error)))
        }
    }

    private static func nanoseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = start.duration(to: .now).components
        return elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
    }
}
