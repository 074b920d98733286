import Logging
import PerfgateCore

/// What a committed request learns besides success: observations folded into overflow series,
/// or the earlier answer to its `Idempotency-Key`, in which case nothing of it was applied.
struct CommitReceipt: Sendable {
    /// Observations counted under `__overflow__`, per family.
    var overflowed: [HistogramMetric: Int] = [:]
    /// The answer already kept under the request's key.
    var replayed: IdempotentAnswer?
}

/// One request's part of a group commit.
struct PendingWrite: Sendable {
    let delta: RollupDelta
    let claim: IdempotencyClaim?
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
/// Called by the write queue's drain task, one call at a time, which is why it may keep the
/// registry without a lock.
final class Committer: @unchecked Sendable {
    private var registry: SeriesRegistry
    private let store: any RollupStore
    private let live: LiveMetrics
    private let selfMetrics: SelfMetrics
    private let clock: any WallClock
    private let logger: Logger
    /// For how long idempotent answers are kept.
    private let configuration: ServerConfiguration

    init(
        registry: SeriesRegistry, store: any RollupStore, live: LiveMetrics, selfMetrics: SelfMetrics,
        clock: any WallClock, configuration: ServerConfiguration, logger: Logger
    ) {
        self.configuration = configuration
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

    /// Writes every request's counts, and the answers of those with a key, in one transaction;
    /// all are applied or none. A request whose key already has an answer applies nothing.
    func commit(_ writes: [PendingWrite]) async -> Result<[CommitReceipt], WriteError> {
        var created: [SeriesRecord] = []
        var merged: [MergeKey: HistogramCounts] = [:]
        var receipts: [CommitReceipt] = []
        var answers: [String: IdempotentAnswer] = [:]
        var overflowTotal: [HistogramMetric: Int] = [:]
        let now = clock.now()
        receipts.reserveCapacity(writes.count)
        for write in writes {
            var receipt = CommitReceipt()
            if let claim = write.claim {
                // Checked here, by the one writer, so two concurrent retries cannot both apply.
                var earlier = answers[claim.key]
                do {
                    if earlier == nil { earlier = try await store.answer(forKey: claim.key, since: configuration.oldestKeptAnswer(at: now)) }
                } catch {
                    return fail(error, created: created, requests: writes.count)
                }
                if let earlier {
                    receipt.replayed = earlier
                    receipts.append(receipt)
                    continue
                }
            }
            for (key, counts) in write.delta.entries {
                let (id, overflowed) = registry.resolve(key.series, created: &created)
                if overflowed {
                    receipt.overflowed[key.series.metric, default: 0] += Int(counts.count)
                }
                let mergeKey = MergeKey(series: id, minute: key.minute)
                if merged[mergeKey] == nil { merged[mergeKey] = counts } else { merged[mergeKey]!.add(counts) }
            }
            for (metric, count) in receipt.overflowed { overflowTotal[metric, default: 0] += count }
            if let claim = write.claim {
                answers[claim.key] = IdempotentAnswer(
                    key: claim.key, bodyFingerprint: claim.bodyFingerprint, status: 200, body: claim.render(receipt), createdAt: now.seconds
                )
            }
            receipts.append(receipt)
        }
        let rollups = merged.map { MinuteRollup(seriesID: $0.key.series, minute: $0.key.minute, counts: $0.value) }

        let started = ContinuousClock.now
        do {
            try await store.commit(CommitBatch(newSeries: created, rollups: rollups, answers: Array(answers.values)))
        } catch {
            selfMetrics.recordCommit(nanoseconds: Self.nanoseconds(since: started), succeeded: false, overflowed: [:])
            return fail(error, created: created, requests: writes.count)
        }
        selfMetrics.recordCommit(nanoseconds: Self.nanoseconds(since: started), succeeded: true, overflowed: overflowTotal)
        for rollup in rollups { registry.touch(rollup.seriesID, at: now.minute) }

        // Label text is rendered here, once per new series, outside the lock scrapes take.
        let newSeries = created.map { (record: $0, labels: RenderedLabels($0.key)) }
        live.apply(newSeries: newSeries, rollups: rollups, now: now)
        return .success(receipts)
    }

    private func fail(_ error: any Error, created: [SeriesRecord], requests: Int) -> Result<[CommitReceipt], WriteError> {
        registry.forget(created)
        logger.error("commit failed; the requests in it were answered 503", metadata: ["store.error": "\(error)", "ingest.requests": "\(requests)"])
        return .failure(.storeFailed(String(describing: error)))
    }

    /// Deletes the series `selector` matches from the store and from `/metrics`.
    func delete(matching selector: SeriesSelector) async -> Result<[SeriesKey], WriteError> {
        await remove(registry.records(matching: selector), reason: .admin)
    }

    /// Deletes the series not written since before `cutoff`.
    func expire(idleBefore cutoff: Minute) async -> Result<[SeriesKey], WriteError> {
        await remove(registry.records(idleBefore: cutoff), reason: .idle)
    }

    private func remove(_ records: [SeriesRecord], reason: SeriesDeletion) async -> Result<[SeriesKey], WriteError> {
        guard !records.isEmpty else { return .success([]) }
        let recentSince = live.shareWindowStart(at: clock.now())
        let recent: [MinuteRollup]
        do {
            recent = try await store.delete(Set(records.map(\.id)), recentSince: recentSince)
        } catch {
            logger.error("deleting series failed; nothing was deleted", metadata: ["store.error": "\(error)", "series": "\(records.count)"])
            return .failure(.storeFailed(String(describing: error)))
        }
        registry.remove(records)
        live.remove(Set(records.map(\.id)), recent: recent)
        selfMetrics.recordDeletedSeries(records.count, reason: reason)
        logger.info("deleted series", metadata: ["series": "\(records.count)", "reason": "\(reason.rawValue)"])
        return .success(records.map(\.key).sorted())
    }

    /// Folds expired minutes into their series' base.
    func prune(before cutoff: Minute) async -> Result<PruneReport, WriteError> {
        do {
            let report = try await store.prune(before: cutoff, answersBefore: configuration.oldestKeptAnswer(at: clock.now()))
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
