/// A series' identity in the store.
package typealias SeriesID = Int64

/// A series and the identifier the store knows it by.
package struct SeriesRecord: Equatable, Sendable {
    /// The store's identifier.
    package var id: SeriesID
    /// The family and label values.
    package var key: SeriesKey

    /// A series record.
    package init(id: SeriesID, key: SeriesKey) {
        self.id = id
        self.key = key
    }
}

/// Counts of one series in one minute.
package struct MinuteRollup: Equatable, Sendable {
    /// The series.
    package var seriesID: SeriesID
    /// The minute.
    package var minute: Minute
    /// What the series counted in that minute.
    package var counts: HistogramCounts

    /// A series-minute's counts.
    package init(seriesID: SeriesID, minute: Minute, counts: HistogramCounts) {
        self.seriesID = seriesID
        self.minute = minute
        self.counts = counts
    }
}

/// Everything one group commit writes: series seen for the first time, counts to add, the
/// answers of the requests that sent an `Idempotency-Key`, and OTLP spans waiting for their root.
package struct CommitBatch: Sendable {
    /// Series to create, with identifiers the writer chose.
    package var newSeries: [SeriesRecord]
    /// Counts to add to minute rollups (created when absent).
    package var rollups: [MinuteRollup]
    /// Answers to keep, replacing any expired answer under the same key.
    package var answers: [IdempotentAnswer]
    /// Traces whose waiting spans are all replaced by `pendingSpans`' (none, once a trace is an event).
    package var settledTraces: [TraceID]
    /// Spans to keep until their trace's local root arrives.
    package var pendingSpans: [PendingSpan]
    /// Answers created before this (Unix seconds) have expired and give way to `answers`; a kept
    /// answer under one of their keys that has not expired fails the commit with `answerTaken`.
    package var answersKeptSince: Int64

    /// A commit of new series, rollup additions, kept answers and waiting spans.
    package init(
        newSeries: [SeriesRecord], rollups: [MinuteRollup], answers: [IdempotentAnswer] = [],
        settledTraces: [TraceID] = [], pendingSpans: [PendingSpan] = [], answersKeptSince: Int64 = .min
    ) {
        self.newSeries = newSeries
        self.rollups = rollups
        self.answers = answers
        self.settledTraces = settledTraces
        self.pendingSpans = pendingSpans
        self.answersKeptSince = answersKeptSince
    }
}

/// An OTLP span kept until its trace's local root span arrives.
package struct PendingSpan: Equatable, Sendable {
    /// The span.
    package var span: OTLPSpan
    /// When it was acknowledged, in Unix seconds: it waits at most `--trace-wait` from then.
    package var receivedAt: Int64

    /// A span received at `receivedAt`.
    package init(_ span: OTLPSpan, receivedAt: Int64) {
        self.span = span
        self.receivedAt = receivedAt
    }
}

/// What one trace keeps in the store while it waits: rows, and their bytes.
package struct WaitingRows: Equatable, Sendable {
    package var spans: Int
    package var bytes: Int

    /// `spans` rows of `bytes` bytes in all.
    package init(spans: Int, bytes: Int) {
        self.spans = spans
        self.bytes = bytes
    }

    /// These rows and `other`'s.
    package func adding(_ other: WaitingRows) -> WaitingRows { WaitingRows(spans: spans + other.spans, bytes: bytes + other.bytes) }
    /// These rows without `other`'s.
    package func removing(_ other: WaitingRows) -> WaitingRows { WaitingRows(spans: spans - other.spans, bytes: bytes - other.bytes) }
}

/// What a store holds, read back at start-up.
package struct RestoredState: Sendable {
    /// Every series.
    package var series: [SeriesRecord]
    /// Cumulative counts per series: the pruned base plus every retained minute.
    package var totals: [SeriesID: HistogramCounts]
    /// Minute rollups at or after the minute asked for, for the in-memory windows.
    package var recent: [MinuteRollup]
    /// The last minute each series counted something in, among the minutes still kept.
    package var lastMinutes: [SeriesID: Minute]
    /// The traces that have spans waiting (for their root, or counted roots waiting for spans
    /// that end after them), with what they hold.
    package var pendingTraces: [TraceID: WaitingRows]

    /// A restored state.
    package init(
        series: [SeriesRecord], totals: [SeriesID: HistogramCounts], recent: [MinuteRollup], lastMinutes: [SeriesID: Minute] = [:],
        pendingTraces: [TraceID: WaitingRows] = [:]
    ) {
        self.series = series
        self.totals = totals
        self.recent = recent
        self.lastMinutes = lastMinutes
        self.pendingTraces = pendingTraces
    }
}

/// What one prune did.
package struct PruneReport: Equatable, Sendable {
    /// Minute rollups removed after folding them into their series' base.
    package var rollupsFolded: Int
    /// Idempotent answers removed because they expired.
    package var answersForgotten: Int

    /// A report.
    package init(rollupsFolded: Int, answersForgotten: Int = 0) {
        self.rollupsFolded = rollupsFolded
        self.answersForgotten = answersForgotten
    }
}

/// Durable minute rollups per series.
///
/// Every call is async, and the store decides where its work runs: the SQLite store on threads
/// of its own (its calls block on disk), a store reached over the network on its connections'
/// event loops. Callers never hop to a thread pool for it.
///
/// Concurrency: `commit`, `prune`, `delete` and `checkpoint` come from one writer, one at a time;
/// reads may come at any time, concurrently with the writer and with each other. Returned values
/// are copies and are never changed later.
package protocol RollupStore: AnyObject, Sendable {
    /// Rows found damaged when read back: skipped, counted and described, never fatal.
    var corruptRows: CorruptRows { get }
    /// The room kept answers may take; a commit past it lets the oldest go, counted here.
    var answerRoom: AnswerRoom { get }
    /// Reads every series, its cumulative counts, and the rollups from `recentSince` on.
    func restore(recentSince: Minute) async throws -> RestoredState
    /// Creates the new series and adds the rollups, all in one transaction: all or nothing.
    /// Returns once the transaction is durable.
    func commit(_ batch: CommitBatch) async throws
    /// Folds the rollups of minutes before `cutoff` into their series' base and removes them,
    /// and removes idempotent answers created before `answersBefore` (Unix seconds).
    func prune(before cutoff: Minute, answersBefore: Int64) async throws -> PruneReport
    /// Removes the series and every row of theirs in one transaction; returns their rollups
    /// from `recentSince` on, so that in-memory windows can take them back out.
    func delete(_ series: Set<SeriesID>, recentSince: Minute) async throws -> [MinuteRollup]
    /// The answer kept under `key`, if it was created at or after `since` (Unix seconds).
    func answer(forKey key: String, since: Int64) async throws -> IdempotentAnswer?
    /// The spans of `traces` that wait for their root.
    func pendingSpans(of traces: Set<TraceID>) async throws -> [PendingSpan]
    /// Removes the waiting spans received before `receivedBefore` (Unix seconds), with every
    /// other waiting span of their traces: whole traces, at most `maxTraces` of them and, past the
    /// first, at most `maxSpans` spans in all (so that a backlog goes in batches of bounded memory
    /// and time); returns the spans removed.
    func dropPendingSpans(receivedBefore: Int64, maxTraces: Int, maxSpans: Int) async throws -> [PendingSpan]
    /// The counts of each of `series` (all of family `metric`) over a range of minutes; series
    /// with nothing in range are absent. Counts of another layout than the family's are an error.
    func windowTotals(of metric: HistogramMetric, series: Set<SeriesID>, minutes: ClosedRange<Minute>) async throws -> [SeriesID: HistogramCounts]
    /// The counts of `metric`'s series summed per group and per step of `stepMinutes` over a
    /// range of minutes: `result[group][step]`. `groups` maps each series wanted to its group
    /// (0..<groupCount); rows of other series are skipped.
    func groupedTotals(
        of metric: HistogramMetric, groups: [SeriesID: Int], groupCount: Int, minutes: ClosedRange<Minute>, stepMinutes: Int64
    ) async throws -> [[HistogramCounts]]
    /// Moves every row that cannot be read back out of the tables a server reads, into tables
    /// of their own (`quarantined_*`), kept as they were; returns each, described. For
    /// `perfgate check --quarantine`, with no server running on the store.
    func quarantineDamagedRows() async throws -> [String]
    /// The store's size, in bytes (on disk, or as its server counts it).
    func sizeInBytes() async throws -> Int64
    /// Makes the store complete on its own (nothing left in logs to replay); called after the last
    /// write at shutdown.
    func checkpoint() async throws
    /// The executor the store's writes run on, if it has one: a task that prefers it (the
    /// write queue's drain task) makes its writes without a hand-off per call.
    var writeExecutor: (any TaskExecutor)? { get }
}

extension RollupStore {
    package var writeExecutor: (any TaskExecutor)? { nil }
}

/// The time one series counted in one minute, over every replica.
package struct SeriesMinuteSum: Equatable, Sendable {
    /// The series.
    package var seriesID: SeriesID
    /// The minute.
    package var minute: Minute
    /// The sum of its observations, in nanoseconds.
    package var sumNanoseconds: Int128

    /// A series-minute's time.
    package init(seriesID: SeriesID, minute: Minute, sumNanoseconds: Int128) {
        self.seriesID = seriesID
        self.minute = minute
        self.sumNanoseconds = sumNanoseconds
    }
}

/// A store several replicas share. Each replica writes under its instance name: `restore` gives
/// it its own cumulative counts, while minute windows, series and idempotent answers are every
/// replica's. Series identifiers are `SeriesKey.sharedID(keyedBy: seriesIDKey)`, the same on every
/// replica.
///
/// Commits of two replicas may run at once. A commit whose answer key another replica's commit
/// took meanwhile fails with `answerTaken`, having applied nothing. `prune` and
/// `dropPendingSpans` may be called by every replica; each removed row is folded or returned once.
package protocol SharedRollupStore: RollupStore {
    /// The database's secret for series identifiers.
    var seriesIDKey: SeriesIDKey { get }
    /// New series whose identifier another series holds: their counts are not stored.
    var collidingSeries: CorruptRows { get }
    /// The series any replica created from `since` on (nil: all of them), with where the next call
    /// starts; a series may come back more than once.
    func series(createdSince since: CatalogCursor?) async throws -> (records: [SeriesRecord], next: CatalogCursor)
    /// Every replica's time per series-minute of the `metrics`' series from `since` on.
    func minuteSums(of metrics: [HistogramMetric], since: Minute) async throws -> [SeriesMinuteSum]
    /// Those of `series` some replica wrote in `since` or later.
    func written(_ series: Set<SeriesID>, since: Minute) async throws -> Set<SeriesID>
}

/// Where a reading of the series catalog left off: the database's clock at that reading.
package struct CatalogCursor: Sendable {
    /// Microseconds since the Unix epoch, by the database's clock.
    package var microseconds: Int64

    /// A cursor at a time of the database's clock.
    package init(microseconds: Int64) {
        self.microseconds = microseconds
    }
}

/// A commit whose reply never came (the connection to a database closed under it): it may or
/// may not have taken effect, and only a retry under the same `Idempotency-Key` settles which.
package struct CommitOutcomeUnknown: Error, CustomStringConvertible, Sendable {
    /// What cut the commit off.
    package var reason: String

    /// An unknown outcome, and why.
    package init(reason: String) {
        self.reason = reason
    }

    package var description: String { reason }
}

/// A commit refused because another replica holds unexpired answers under some of its keys.
package struct AnswerTaken: Error, Sendable {
    /// The keys already answered.
    package var keys: [String]

    /// A refusal naming the keys.
    package init(keys: [String]) {
        self.keys = keys
    }
}
