import PerfgateCore
import Synchronization

/// A `RollupStore` held in memory, for tests of the layers above storage.
///
/// It keeps the same contract as the SQLite store, including all-or-nothing commits; a commit
/// can be made to fail on purpose to test what callers do when the disk refuses a write, or
/// held to test what they do while the disk is slow.
package final class InMemoryRollupStore: RollupStore {
    package let corruptRows = CorruptRows()
    package let answerRoom = AnswerRoom()

    /// Nothing is stored as bytes here: nothing can be damaged.
    package func quarantineDamagedRows() async throws -> [String] { [] }

    private struct State {
        var series: [SeriesRecord] = []
        var base: [SeriesID: HistogramCounts] = [:]
        var rollups: [Minute: [SeriesID: HistogramCounts]] = [:]
        var answers: [String: IdempotentAnswer] = [:]
        var pending: [TraceID: [UInt64: PendingSpan]] = [:]
        var failCommits: (any Error)?
        var loseCommitReplies = false
        var holdCommits = false
        var heldCommits = 0
    }

    private let state = Mutex(State())
    private let layouts: BucketLayouts

    /// An empty store for counts of `layouts`.
    package init(layouts: BucketLayouts = .seed) {
        self.layouts = layouts
    }

    /// Makes every following commit fail with `error` (nil to succeed again).
    package func failCommits(with error: (any Error)?) {
        state.withLock { $0.failCommits = error }
    }

    /// Makes every following commit apply and then throw `CommitOutcomeUnknown`, as when a
    /// database's connection closes before its reply comes.
    package func loseCommitReplies(_ lose: Bool) {
        state.withLock { $0.loseCommitReplies = lose }
    }

    /// Makes every following commit wait until `holdCommits(false)`, as a stalled disk would.
    package func holdCommits(_ hold: Bool) {
        state.withLock { $0.holdCommits = hold }
    }

    /// Commits waiting for `holdCommits(false)` now.
    package var heldCommits: Int { state.withLock { $0.heldCommits } }

    package func restore(recentSince: Minute) throws -> RestoredState {
        state.withLock { state in
            var totals = state.base
            var recent: [MinuteRollup] = []
            var lastMinutes: [SeriesID: Minute] = [:]
            for (minute, perSeries) in state.rollups {
                for (id, counts) in perSeries {
                    lastMinutes[id] = max(lastMinutes[id] ?? minute, minute)
                    totals[id, default: HistogramCounts(bucketCount: counts.buckets.count)].add(counts)
                    if minute >= recentSince {
                        recent.append(MinuteRollup(seriesID: id, minute: minute, counts: counts))
                    }
                }
            }
            return RestoredState(series: state.series, totals: totals, recent: recent, lastMinutes: lastMinutes, pendingTraces: state.pending.mapValues { rows in
                WaitingRows(spans: rows.count, bytes: rows.values.reduce(0) { $0 + $1.span.encoded().count })
            })
        }
    }

    package func commit(_ batch: CommitBatch) async throws {
        // Polled rather than signalled: a test-only stall.
        let held = state.withLock { state in
            if state.holdCommits { state.heldCommits += 1 }
            return state.holdCommits
        }
        if held {
            defer { state.withLock { $0.heldCommits -= 1 } }
            while state.withLock({ $0.holdCommits }) { try await Task.sleep(for: .milliseconds(1)) }
        }
        let lost = try state.withLock { state in
            if let error = state.failCommits { throw error }
            state.series.append(contentsOf: batch.newSeries)
            for rollup in batch.rollups {
                state.rollups[rollup.minute, default: [:]][rollup.seriesID, default: HistogramCounts(bucketCount: rollup.counts.buckets.count)]
                    .add(rollup.counts)
            }
            for answer in batch.answers { state.answers[answer.key] = answer }
            for trace in batch.settledTraces { state.pending[trace] = nil }
            for pending in batch.pendingSpans where state.pending[pending.span.traceID]?[pending.span.spanID] == nil {
                state.pending[pending.span.traceID, default: [:]][pending.span.spanID] = pending
            }
            return state.loseCommitReplies
        }
        if lost { throw CommitOutcomeUnknown(reason: "the connection closed before the commit was answered") }
    }

    package func delete(_ series: Set<SeriesID>, recentSince: Minute) throws -> [MinuteRollup] {
        state.withLock { state in
            var recent: [MinuteRollup] = []
            for minute in Array(state.rollups.keys) {
                for id in series {
                    guard let counts = state.rollups[minute]?.removeValue(forKey: id) else { continue }
                    if minute >= recentSince { recent.append(MinuteRollup(seriesID: id, minute: minute, counts: counts)) }
                }
            }
            state.series.removeAll { series.contains($0.id) }
            for id in series { state.base[id] = nil }
            return recent
        }
    }

    package func answer(forKey key: String, since: Int64) throws -> IdempotentAnswer? {
        state.withLock { state in state.answers[key].flatMap { $0.createdAt >= since ? $0 : nil } }
    }

    package func pendingSpans(of traces: Set<TraceID>) throws -> [PendingSpan] {
        state.withLock { state in traces.flatMap { state.pending[$0].map { Array($0.values) } ?? [] } }
    }

    package func dropPendingSpans(receivedBefore cutoff: Int64, maxTraces: Int, maxSpans: Int) throws -> [PendingSpan] {
        state.withLock { state in
            var dropped: [PendingSpan] = []
            for (trace, rows) in state.pending.filter({ $0.value.values.contains { $0.receivedAt < cutoff } }).prefix(maxTraces) {
                if !dropped.isEmpty, dropped.count + rows.count > maxSpans { break }
                state.pending[trace] = nil
                dropped += rows.values
            }
            return dropped
        }
    }

    package func prune(before cutoff: Minute, answersBefore: Int64) throws -> PruneReport {
        state.withLock { state in
            var folded = 0
            for minute in state.rollups.keys where minute < cutoff {
                for (id, counts) in state.rollups.removeValue(forKey: minute)! {
                    state.base[id, default: HistogramCounts(bucketCount: counts.buckets.count)].add(counts)
                    folded += 1
                }
            }
            let expired = state.answers.values.filter { $0.createdAt < answersBefore }.map(\.key)
            for key in expired { state.answers[key] = nil }
            return PruneReport(rollupsFolded: folded, answersForgotten: expired.count)
        }
    }

    package func windowTotals(of metric: HistogramMetric, series: Set<SeriesID>, minutes: ClosedRange<Minute>) throws -> [SeriesID: HistogramCounts] {
        state.withLock { state in
            var totals: [SeriesID: HistogramCounts] = [:]
            for (minute, perSeries) in state.rollups where minutes.contains(minute) {
                for (id, counts) in perSeries where series.contains(id) {
                    totals[id, default: HistogramCounts(bucketCount: counts.buckets.count)].add(counts)
                }
            }
            return totals
        }
    }

    package func groupedTotals(
        of metric: HistogramMetric, groups: [SeriesID: Int], groupCount: Int, minutes: ClosedRange<Minute>, stepMinutes: Int64
    ) throws -> [[HistogramCounts]] {
        let steps = Int((minutes.lowerBound.distance(to: minutes.upperBound) + stepMinutes) / stepMinutes)
        let empty = HistogramCounts(bucketCount: layouts[metric].bucketCount)
        return state.withLock { state in
            var result = Array(repeating: Array(repeating: empty, count: steps), count: groupCount)
            for (minute, perSeries) in state.rollups where minutes.contains(minute) {
                let step = Int(minutes.lowerBound.distance(to: minute) / stepMinutes)
                for (id, counts) in perSeries {
                    guard let group = groups[id] else { continue }
                    result[group][step].add(counts)
                }
            }
            return result
        }
    }

    package func sizeInBytes() -> Int64 { 0 }

    package func checkpoint() throws {}
}
