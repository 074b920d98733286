import Logging
import PerfgateCore
import Synchronization

/// What a committed request learns besides success: observations folded into overflow series,
/// or the earlier answer to its `Idempotency-Key`, in which case nothing of it was applied.
struct CommitReceipt: Sendable {
    /// Observations counted under `__overflow__`, per family.
    var overflowed: [HistogramMetric: Int] = [:]
    /// The answer already kept under the request's key.
    var replayed: IdempotentAnswer?
    /// What the request's OTLP spans came to, with the spans waiting for them.
    var traces: TraceAssembly.Outcome?
}

/// One request's part of a group commit: counts already aggregated, or OTLP spans the writer
/// assembles with the spans already waiting for their root.
struct PendingWrite: Sendable {
    let delta: RollupDelta
    let claim: IdempotencyClaim?
    var traces: TraceWrite?

    /// Events or spans the write holds, as the queue's bound counts them.
    var size: Int { traces?.spans.count ?? delta.eventCount }
}

/// A request's OTLP spans and the rules their events follow.
struct TraceWrite: Sendable {
    let spans: [OTLPSpan]
    let rules: EventRules
}

/// Why a write was not made; nothing of the request was applied.
enum WriteError: Error, Sendable {
    /// The queue holds as many events as it may.
    case overloaded(queued: Int, capacity: Int)
    /// The service is stopping and takes no more writes.
    case shuttingDown
    /// The store refused the transaction (disk full, I/O error).
    case storeFailed(String)
    /// The store's reply to the transaction was lost: it may or may not have been applied.
    case outcomeUnknown(String)
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
    /// Traces with rows in the store waiting (spans for their root, counted roots for spans
    /// that end after them), with what each holds.
    private var pendingTraces: [TraceID: WaitingRows]
    /// What all of them hold, against `--max-waiting-spans` and `--max-waiting-bytes`.
    private var waitingTotal: WaitingRows
    /// Each trace's waiting spans, for the traces route to size its commits by.
    let waitingIndex: WaitingIndex
    /// Set when a commit's outcome was unknown: until this replica reads its own counts back
    /// from the store, `/metrics` may lack what that commit applied. Written by the writer only;
    /// read elsewhere to skip queueing a read-back that has nothing to do.
    private let unsettledFlag = Atomic<Bool>(false)

    /// True while a commit's outcome is unknown and the counts have not been read back since.
    var unsettled: Bool { unsettledFlag.load(ordering: .relaxed) }

    /// Where the store's writes run, for the task that drives commits.
    var writeExecutor: (any TaskExecutor)? { store.writeExecutor }

    init(
        registry: SeriesRegistry, pendingTraces: [TraceID: WaitingRows] = [:], store: any RollupStore, live: LiveMetrics, selfMetrics: SelfMetrics,
        clock: any WallClock, configuration: ServerConfiguration, logger: Logger
    ) {
        self.configuration = configuration
        self.pendingTraces = pendingTraces
        waitingTotal = pendingTraces.values.reduce(WaitingRows(spans: 0, bytes: 0)) { $0.adding($1) }
        waitingIndex = WaitingIndex(pendingTraces.mapValues(\.spans))
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
        if unsettled {
            do {
                try await settle()
            } catch {
                return fail(error, created: [], requests: writes.count)
            }
        }
        return await commit(writes, attempt: 1)
    }

    /// Reads this replica's own counts back if a commit's outcome was unknown; a failure leaves
    /// that for the next commit or the next call.
    func settleIfUnsure() async {
        guard unsettled else { return }
        do {
            try await settle()
        } catch {
            logger.warning("reading this replica's counts back failed; retrying", metadata: ["store.error": "\(error)"])
        }
    }

    /// Makes `/metrics` show the counts the store holds for this replica, whether or not the
    /// commit whose outcome was unknown was applied (counts only grow, so the store's are right).
    private func settle() async throws {
        // No recent minutes: only a shared store has unknown outcomes, and its share window is
        // read from the store on its own.
        let stored = try await store.restore(recentSince: Minute(index: .max))
        // Series that commit created, if it was applied, are named again.
        adopt(stored.series)
        let changed = live.settle(stored.totals)
        unsettledFlag.store(false, ordering: .relaxed)
        logger.info("read this replica's counts back after a commit whose outcome was unknown", metadata: ["series.changed": "\(changed)"])
    }

    /// Tries that another replica answered one of the keys first: each retry finds that answer.
    private static let attemptsPerCommit = 3

    private func commit(_ writes: [PendingWrite], attempt: Int) async -> Result<[CommitReceipt], WriteError> {
        var created: [SeriesRecord] = []
        var merged: [MergeKey: HistogramCounts] = [:]
        var receipts: [CommitReceipt] = []
        var answers: [String: IdempotentAnswer] = [:]
        var overflowTotal: [HistogramMetric: Int] = [:]
        // The waiting spans of every trace this commit touches, as they stand after each write.
        var waiting = WaitingChanges()
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
            var delta = write.delta
            if let traces = write.traces {
                do {
                    let outcome = try await assemble(traces, waiting: &waiting, now: now)
                    if !outcome.refused.isEmpty { logRefusals(outcome.refused, now: now) }
                    delta.add(outcome.columns, layouts: configuration.layouts)
                    receipt.traces = outcome
                } catch {
                    return fail(error, created: created, requests: writes.count)
                }
            }
            for (key, counts) in delta.entries {
                let (id, overflowed) = registry.resolve(key.series, created: &created)
                if overflowed {
                    receipt.overflowed[key.series.metric, default: 0] += Int(counts.count)
                }
                let mergeKey = MergeKey(series: id, minute: key.minute)
                if merged[mergeKey] == nil { merged[mergeKey] = counts } else { merged[mergeKey]!.add(counts) }
            }
            // A small body's observations, counted straight into the commit's counts.
            for observation in delta.observations {
                let key = delta.observedKeys[Int(observation.key)]
                let (id, overflowed) = registry.resolve(key.series, created: &created)
                if overflowed { receipt.overflowed[key.series.metric, default: 0] += 1 }
                let layout = configuration.layouts[key.series.metric]
                merged[MergeKey(series: id, minute: key.minute), default: HistogramCounts(bucketCount: layout.bucketCount)].observe(observation)
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
            try await store.commit(CommitBatch(
                newSeries: created, rollups: rollups, answers: Array(answers.values),
                settledTraces: Array(waiting.rows.keys), pendingSpans: waiting.rows.values.flatMap { $0 },
                answersKeptSince: configuration.oldestKeptAnswer(at: now)
            ))
        } catch let taken as AnswerTaken where attempt < Self.attemptsPerCommit {
            // Another replica committed a retry of one of these requests meanwhile; nothing of this
            // commit was applied. Committing again replays its answer and applies the others.
            registry.forget(created)
            logger.info("another replica answered an idempotency key first; committing again", metadata: ["idempotency.keys": "\(taken.keys.joined(separator: ","))"])
            return await commit(writes, attempt: attempt + 1)
        } catch let unknown as CommitOutcomeUnknown {
            selfMetrics.recordCommit(nanoseconds: Self.nanoseconds(since: started), succeeded: false, overflowed: [:])
            // Created again by the next commit if it was not applied (a shared store's ids are the
            // keys' hashes, so creating one twice changes nothing); adopted back if it was.
            registry.forget(created)
            unsettledFlag.store(true, ordering: .relaxed)
            logger.error("commit cut off; the requests in it were answered 503 as perhaps applied", metadata: ["store.error": "\(unknown)", "ingest.requests": "\(writes.count)"])
            return .failure(.outcomeUnknown(unknown.reason))
        } catch {
            selfMetrics.recordCommit(nanoseconds: Self.nanoseconds(since: started), succeeded: false, overflowed: [:])
            return fail(error, created: created, requests: writes.count)
        }
        selfMetrics.recordCommit(nanoseconds: Self.nanoseconds(since: started), succeeded: true, overflowed: overflowTotal)
        for rollup in rollups { registry.touch(rollup.seriesID, at: now.minute) }
        if !waiting.rows.isEmpty {
            for (trace, held) in waiting.held {
                if let before = pendingTraces[trace] { waitingTotal = waitingTotal.removing(before) }
                pendingTraces[trace] = held.spans == 0 ? nil : held
                waitingTotal = waitingTotal.adding(held)
            }
            waitingIndex.update(waiting.held.lazy.map { ($0.key, $0.value.spans) })
            selfMetrics.recordWaiting(traces: pendingTraces.count, rows: waitingTotal)
        }

        // Label text is rendered here, once per new series, outside the lock scrapes take.
        let newSeries = created.map { (record: $0, labels: RenderedLabels($0.key)) }
        live.apply(newSeries: newSeries, rollups: rollups, now: now)
        return .success(receipts)
    }

    /// The waiting rows of the traces one commit touches, as they stand after each of its writes.
    private struct WaitingChanges {
        /// Each trace's rows: what replaces them in the store.
        var rows: [TraceID: [PendingSpan]] = [:]
        /// What those rows hold.
        var held: [TraceID: WaitingRows] = [:]
    }

    /// Assembles a request's spans with those of their traces already waiting (in `waiting` from
    /// this commit's earlier writes, else in the store); leaves in `waiting` what still waits.
    /// A trace new to the waiting room is refused once the room is full.
    private func assemble(_ traces: TraceWrite, waiting: inout WaitingChanges, now: Timestamp) async throws -> TraceAssembly.Outcome {
        let involved = Set(traces.spans.map(\.traceID))
        // A shared store may hold spans other replicas received: every trace is looked up there.
        let shared = store is any SharedRollupStore
        let stored = involved.filter { waiting.rows[$0] == nil && (shared || pendingTraces[$0] != nil) }
        for trace in involved where waiting.rows[trace] == nil { waiting.rows[trace] = [] }
        for pending in try await store.pendingSpans(of: stored) { waiting.rows[pending.span.traceID]!.append(pending) }
        var receivedAt: [SpanKey: Int64] = [:]
        var spans: [OTLPSpan] = []
        // The spans each trace that waited held, those its counted roots took included.
        var held: [TraceID: Int] = [:]
        for trace in involved {
            for pending in waiting.rows[trace]! {
                receivedAt[SpanKey(pending.span)] = pending.receivedAt
                spans.append(pending.span)
                held[trace, default: 0] += 1 + (pending.span.settlement?.members.count ?? 0)
            }
            waiting.rows[trace] = []
        }
        // A trace that would pass --max-spans-per-trace with this write's spans refuses them and
        // keeps what it held: spans acknowledged before are not given up for a later export's.
        var refusedTooLarge: [TraceAssembly.Refused] = []
        var admitted = traces.spans
        let limit = traces.rules.limits.maxSpansPerTrace
        if !held.isEmpty {
            var fresh: [TraceID: Set<UInt64>] = [:]
            for span in traces.spans where held[span.traceID] != nil && receivedAt[SpanKey(span)] == nil { fresh[span.traceID, default: []].insert(span.spanID) }
            let over = Set(fresh.filter { held[$0.key]! + $0.value.count > limit }.keys)
            if !over.isEmpty {
                admitted.removeAll { over.contains($0.traceID) && receivedAt[SpanKey($0)] == nil }
                for trace in over.sorted() {
                    refusedTooLarge.append(TraceAssembly.Refused(
                        trace: trace, spans: fresh[trace]!.count, reason: .traceTooLarge,
                        message: "trace \(trace): it would hold \(held[trace]! + fresh[trace]!.count) spans, more than the limit of \(limit) (--max-spans-per-trace)"
                    ))
                }
            }
        }
        spans += admitted
        var outcome = TraceAssembly.assemble(spans, rules: traces.rules)
        outcome.refused += refusedTooLarge

        // What the room holds with this write's other traces as they stand.
        var total = waitingTotal
        for trace in involved.union(waiting.held.keys) {
            if let before = pendingTraces[trace] { total = total.removing(before) }
            if !involved.contains(trace), let held = waiting.held[trace] { total = total.adding(held) }
        }
        var kept: [TraceID: [PendingSpan]] = [:]
        for span in outcome.pending {
            kept[span.traceID, default: []].append(PendingSpan(span, receivedAt: receivedAt[SpanKey(span)] ?? now.seconds))
        }
        for trace in involved.sorted() {
            var rows = kept[trace] ?? []
            var holds = Self.holding(rows)
            let fits = total.spans + holds.spans <= configuration.maxWaitingSpans && total.bytes + holds.bytes <= configuration.maxWaitingBytes
            if !fits {
                // Past the bound nothing new waits, in a trace new to the room or one already in it:
                // what waited before stays (a trace's counted root with it, so that nothing counts
                // twice), spans new to the room are refused, and a root new to it is let go.
                let before = rows.count
                rows.removeAll { row in
                    receivedAt[SpanKey(row.span)] == nil && (row.span.settlement == nil || held[trace] == nil)
                }
                let refused = (kept[trace] ?? []).filter { receivedAt[SpanKey($0.span)] == nil && $0.span.settlement == nil }.count
                if refused > 0 {
                    outcome.refused.append(TraceAssembly.Refused(
                        trace: trace, spans: refused, reason: .waitingFull,
                        message: "trace \(trace): \(total.spans) spans (\(total.bytes) bytes) already wait, the most --max-waiting-spans and --max-waiting-bytes allow"
                    ))
                }
                if rows.count != before { holds = Self.holding(rows) }
            }
            waiting.rows[trace] = rows
            waiting.held[trace] = holds
            total = total.adding(holds)
        }
        return outcome
    }

    /// What `rows` hold in the waiting room: their count, and their bytes as the store keeps them.
    private static func holding(_ rows: [PendingSpan]) -> WaitingRows {
        WaitingRows(spans: rows.count, bytes: rows.reduce(0) { $0 + $1.span.encoded().count })
    }

    /// A span's identity.
    private struct SpanKey: Hashable {
        let trace: TraceID
        let span: UInt64

        init(_ span: OTLPSpan) {
            trace = span.traceID
            self.span = span.spanID
        }
    }

    /// When refusals were last logged: at most one line per reason every ten seconds, with the
    /// number refused since, so that a flood of bad traces cannot flood the log.
    private var refusalLog: [TraceRefusal: (lastLogged: Int64?, since: Int)] = [:]

    private func logRefusals(_ refused: [TraceAssembly.Refused], now: Timestamp) {
        for refusal in refused {
            var entry = refusalLog[refusal.reason] ?? (lastLogged: nil, since: 0)
            entry.since += refusal.spans
            if entry.lastLogged.map({ now.seconds - $0 >= 10 }) ?? true {
                logger.warning("OTLP spans refused", metadata: [
                    "otlp.reason": "\(refusal.reason.rawValue)", "otlp.spans": "\(entry.since)", "otlp.example": "\(refusal.message)",
                ])
                entry = (lastLogged: now.seconds, since: 0)
            }
            refusalLog[refusal.reason] = entry
        }
    }

    /// Traces given up in one pass of expiry.
    struct ExpiredTraces: Sendable {
        /// Spans dropped because their root did not arrive in time, and their traces.
        var droppedSpans = 0
        var droppedTraces = 0
        /// Counted roots no longer kept for late spans, and those of them that had counted nothing.
        var closed = 0
        var withoutStages = 0
        /// The pass dropped something: more may have expired.
        var more = false
    }

    /// Expired traces, and spans, given up in one pass at most: a backlog goes in passes between
    /// commits, each of bounded memory and time (a trace may hold thousands of spans).
    static var tracesPerExpiry: Int { 512 }
    static var spansPerExpiry: Int { 8_192 }

    /// Gives up the traces whose spans have waited since before `cutoff` (Unix seconds), at most
    /// `tracesPerExpiry` of them.
    func dropWaitingSpans(receivedBefore cutoff: Int64) async -> Result<ExpiredTraces, WriteError> {
        do {
            let removed = try await store.dropPendingSpans(receivedBefore: cutoff, maxTraces: Self.tracesPerExpiry, maxSpans: Self.spansPerExpiry)
            var expired = ExpiredTraces()
            var traces: Set<TraceID> = []
            var droppedTraces: Set<TraceID> = []
            for row in removed {
                traces.insert(row.span.traceID)
                if let settlement = row.span.settlement {
                    expired.closed += 1
                    if settlement.stages.isEmpty { expired.withoutStages += 1 }
                } else {
                    expired.droppedSpans += 1
                    droppedTraces.insert(row.span.traceID)
                }
            }
            expired.droppedTraces = droppedTraces.count
            // A pass that dropped something may have left more behind: the next one says.
            expired.more = !traces.isEmpty
            for trace in traces {
                if let before = pendingTraces.removeValue(forKey: trace) { waitingTotal = waitingTotal.removing(before) }
            }
            waitingIndex.update(traces.lazy.map { ($0, 0) })
            selfMetrics.recordExpired(expired)
            selfMetrics.recordWaiting(traces: pendingTraces.count, rows: waitingTotal)
            return .success(expired)
        } catch {
            logger.error("dropping expired spans failed", metadata: ["store.error": "\(error)"])
            return .failure(.storeFailed(String(describing: error)))
        }
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

    /// Deletes the series not written since before `cutoff` (by any replica, when the store is shared).
    func expire(idleBefore cutoff: Minute) async -> Result<[SeriesKey], WriteError> {
        var idle = registry.records(idleBefore: cutoff)
        if let shared = store as? any SharedRollupStore, !idle.isEmpty {
            do {
                let written = try await shared.written(Set(idle.map(\.id)), since: cutoff)
                // Written elsewhere: looked at again once the cutoff passes this minute.
                for id in written { registry.touch(id, at: cutoff) }
                idle.removeAll { written.contains($0.id) }
            } catch {
                logger.error("expiring idle series failed; nothing was deleted", metadata: ["store.error": "\(error)"])
                return .failure(.storeFailed(String(describing: error)))
            }
        }
        return await remove(idle, reason: .idle)
    }

    /// Takes in series other replicas created, so that this replica's trends, status page and
    /// `/metrics` know them (with no counts of its own yet).
    func adopt(_ records: [SeriesRecord]) {
        let now = clock.now()
        let added = registry.adopt(records, at: now.minute)
        guard !added.isEmpty else { return }
        live.apply(newSeries: added.map { (record: $0, labels: RenderedLabels($0.key)) }, rollups: [], now: now)
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
