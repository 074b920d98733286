import PerfgateCore
import Synchronization

/// Why a whole ingest request was refused.
enum RequestRejection: String, CaseIterable, Sendable {
    case malformedBody = "malformed_body"
    case bodyTooLarge = "body_too_large"
    case tooManyEvents = "too_many_events"
    case unsupportedMediaType = "unsupported_media_type"
    case overloaded
    case storeError = "store_error"
    /// No bearer token, or one perfgate does not know.
    case unauthorized
    /// A known token without the role the route needs.
    case forbidden
    /// Bytes the HTTP parser could not read as a request (oversized headers, bad framing).
    case malformedHTTP = "malformed_http"
    /// An `Idempotency-Key` header that is empty, too long or not visible ASCII.
    case invalidIdempotencyKey = "invalid_idempotency_key"
    /// An `Idempotency-Key` already used with another body.
    case idempotencyKeyReused = "idempotency_key_reused"
    /// A body that did not fit in `--max-body-memory` beside the bodies already held.
    case bodyMemory = "body_memory"
    /// A state-changing request a browser sent from another site.
    case crossOrigin = "cross_origin"
}

/// Why series were deleted.
enum SeriesDeletion: String, CaseIterable, Sendable {
    /// `DELETE /v1/series` by an admin.
    case admin
    /// Not written for longer than `--series-ttl`.
    case idle
}

/// perfgate's own `perfgate_*` metrics: what it accepted, refused, wrote and holds.
final class SelfMetrics: Sendable {
    private struct Counters {
        var eventsAccepted: UInt64 = 0
        var eventsRejected: [RejectionReason: UInt64] = [:]
        var requestsRejected: [RequestRejection: UInt64] = [:]
        var batches: UInt64 = 0
        var commits: UInt64 = 0
        var commitFailures: UInt64 = 0
        var commitDuration: HistogramCounts
        var overflowed: [HistogramMetric: UInt64] = [:]
        var prunedRollups: UInt64 = 0
        var replays: UInt64 = 0
        var deletedSeries: [SeriesDeletion: UInt64] = [:]
        var spansReceived: UInt64 = 0
        var spansRefused: [TraceRefusal: UInt64] = [:]
        var spansDropped: UInt64 = 0
        var traces: [TraceOutcome: UInt64] = [:]
        var eventsCompleted: UInt64 = 0
        var waitingTraces: UInt64 = 0
        var waiting = WaitingRows(spans: 0, bytes: 0)
        /// Events accepted per wall-clock minute, the last few only: the status page's rate.
        var acceptedByMinute: [Minute: UInt64] = [:]
    }

    /// Minutes of accepted-event counts kept for `acceptedRate`.
    static let rateMinutes: Int64 = 5

    /// Bounds of `perfgate_commit_duration_seconds`: from a fast fsync to a stalled disk.
    static let commitLayout = try! BucketLayout(
        seconds: ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5"]
    )

    private let counters = Mutex(Counters(commitDuration: HistogramCounts(bucketCount: SelfMetrics.commitLayout.bucketCount)))
    let version: String
    let startTime: Timestamp

    init(version: String, startTime: Timestamp) {
        self.version = version
        self.startTime = startTime
    }

    /// Records a body that was read at `now`: its accepted events and each rejected event's first reason.
    func recordBatch(accepted: Int, rejections: [EventRejection], at now: Timestamp) {
        var firstReasons: [Int: RejectionReason] = [:]
        for rejection in rejections where firstReasons[rejection.index] == nil {
            firstReasons[rejection.index] = rejection.reason
        }
        counters.withLock { counters in
            counters.batches += 1
            counters.eventsAccepted += UInt64(accepted)
            let minute = now.minute
            counters.acceptedByMinute[minute, default: 0] += UInt64(accepted)
            if counters.acceptedByMinute.count > Int(Self.rateMinutes) + 1 {
                counters.acceptedByMinute = counters.acceptedByMinute.filter { $0.key > minute.advanced(by: -Self.rateMinutes) }
            }
            for reason in firstReasons.values { counters.eventsRejected[reason, default: 0] += 1 }
        }
    }

    /// Records an OTLP export that was committed: its spans, those refused, and what the traces
    /// completed in its commit came to.
    func recordTraces(spans: Int, unusable: Int, outcome: TraceAssembly.Outcome, at now: Timestamp) {
        recordBatch(accepted: outcome.counted, rejections: [], at: now)
        counters.withLock { counters in
            counters.spansReceived += UInt64(spans)
            if unusable > 0 { counters.spansRefused[.unusableID, default: 0] += UInt64(unusable) }
            for refused in outcome.refused { counters.spansRefused[refused.reason, default: 0] += UInt64(refused.spans) }
            counters.traces[.event, default: 0] += UInt64(outcome.counted)
            counters.traces[.refused, default: 0] += UInt64(outcome.refused.count)
            counters.eventsCompleted += UInt64(outcome.completed)
        }
    }

    /// Records what the waiting room holds now.
    func recordWaiting(traces: Int, rows: WaitingRows) {
        counters.withLock { counters in
            counters.waitingTraces = UInt64(traces)
            counters.waiting = rows
        }
    }

    /// Records traces given up by expiry: spans whose root never came, and roots that counted nothing.
    func recordExpired(_ expired: Committer.ExpiredTraces) {
        counters.withLock { counters in
            counters.spansDropped += UInt64(expired.droppedSpans)
            counters.traces[.noStages, default: 0] += UInt64(expired.withoutStages)
        }
    }

    /// What the status page's OTLP hints read: spans received, refused by reason, dropped, and
    /// traces counted or come to no stage.
    var otlpCounts: OTLPCounts {
        counters.withLock {
            OTLPCounts(received: $0.spansReceived, refused: $0.spansRefused, dropped: $0.spansDropped, events: $0.traces[.event] ?? 0, withoutStages: $0.traces[.noStages] ?? 0)
        }
    }

    struct OTLPCounts: Sendable {
        var received: UInt64
        var refused: [TraceRefusal: UInt64]
        var dropped: UInt64
        var events: UInt64
        var withoutStages: UInt64
    }

    /// Records a request refused as a whole.
    func recordRejectedRequest(_ reason: RequestRejection) {
        counters.withLock { $0.requestsRejected[reason, default: 0] += 1 }
    }

    /// Records a group commit and how long it took.
    func recordCommit(nanoseconds: Int64, succeeded: Bool, overflowed: [HistogramMetric: Int]) {
        let bucket = Self.commitLayout.bucketIndex(for: nanoseconds)
        counters.withLock { counters in
            if succeeded { counters.commits += 1 } else { counters.commitFailures += 1 }
            counters.commitDuration.observe(nanoseconds: nanoseconds, bucket: bucket)
            for (metric, count) in overflowed { counters.overflowed[metric, default: 0] += UInt64(count) }
        }
    }

    /// Records a retry answered with the answer kept under its `Idempotency-Key`.
    func recordReplay() {
        counters.withLock { $0.replays += 1 }
    }

    /// Records series deleted.
    func recordDeletedSeries(_ count: Int, reason: SeriesDeletion) {
        counters.withLock { $0.deletedSeries[reason, default: 0] += UInt64(count) }
    }

    /// Records rollups folded away by a prune.
    func recordPrune(_ report: PruneReport) {
        counters.withLock { $0.prunedRollups += UInt64(report.rollupsFolded) }
    }

    /// Accepted events per second over the last few minutes (or since start, if later).
    func acceptedRate(at now: Timestamp) -> Double {
        let first = now.minute.advanced(by: -(Self.rateMinutes - 1))
        let accepted = counters.withLock { $0.acceptedByMinute.filter { $0.key >= first }.values.reduce(0, +) }
        let since = max(first.start, startTime)
        let seconds = Double(now.nanoseconds - since.nanoseconds) / 1e9
        return seconds > 0 ? Double(accepted) / seconds : 0
    }

    /// Events rejected so far, by the reason of their first error; reasons never seen are left out.
    func rejectedEvents() -> [(reason: String, count: UInt64)] {
        let rejected = counters.withLock { $0.eventsRejected }
        return RejectionReason.allCases.compactMap { reason in rejected[reason].map { (reason.rawValue, $0) } }
    }

    /// Events accepted since start.
    var acceptedEvents: UInt64 { counters.withLock { $0.eventsAccepted } }

    /// Values read from elsewhere at scrape time.
    struct Gauges {
        var seriesCounts: [HistogramMetric: Int]
        var storeSizeBytes: Int64
        var queuedEvents: Int
        var openConnections: Int
        var connectionLimitReached: UInt64
        var connectionsShed: UInt64
        var connectionsTimedOut: UInt64
        var bodyBytesHeld: Int
        var answerBytesHeld: Int
        var answersDropped: UInt64
        var corruptRows: Int
        var seriesCollisions: Int
        var answersEvicted: Int
        var reads: ReadGate.Figures
    }

    /// The `perfgate_*` families, each ready to write.
    func families(_ gauges: Gauges) -> [ExpositionFamily] {
        let counters = self.counters.withLock { $0 }
        let version = self.version
        let startSeconds = Double(startTime.nanoseconds) / 1e9
        func family(_ name: String, _ help: String, _ kind: ExpositionWriter.Kind, _ samples: [(RenderedLabels, Double)]) -> ExpositionFamily {
            ExpositionFamily(name: name) { writer in
                writer.header(name: name, help: help, kind: kind)
                for (labels, value) in samples { writer.sample(name: name, labels: labels, value: value) }
            }
        }
        func labeled(_ name: String, _ value: String) -> RenderedLabels {
            RenderedLabels([(name: name, value: value)])
        }
        return [
            family("perfgate_build_info", "perfgate's version; always 1.", .gauge, [(labeled("version", version), 1)]),
            family("perfgate_start_time_seconds", "When this process started, in Unix seconds.", .gauge, [(.none, startSeconds)]),
            family("perfgate_events_accepted_total", "Events applied to the histograms.", .counter, [(.none, Double(counters.eventsAccepted))]),
            family(
                "perfgate_events_rejected_total", "Events refused, by the reason of their first error.", .counter,
                RejectionReason.allCases.map { (labeled("reason", $0.rawValue), Double(counters.eventsRejected[$0] ?? 0)) }
            ),
            family(
                "perfgate_requests_rejected_total", "Ingest requests refused as a whole, nothing applied, by reason.", .counter,
                RequestRejection.allCases.map { (labeled("reason", $0.rawValue), Double(counters.requestsRejected[$0] ?? 0)) }
            ),
            family("perfgate_batches_total", "Ingest request bodies read and answered.", .counter, [(.none, Double(counters.batches))]),
            family(
                "perfgate_idempotent_replays_total", "Retries answered with the answer kept under their Idempotency-Key; nothing was applied.", .counter,
                [(.none, Double(counters.replays))]
            ),
            family(
                "perfgate_idempotent_answers_evicted_total",
                "Answers kept for Idempotency-Key retries let go before --idempotency-ttl, oldest first, to stay within --max-kept-answers and --max-kept-answer-bytes; a retry of one is applied again.",
                .counter, [(.none, Double(gauges.answersEvicted))]
            ),
            family("perfgate_commits_total", "Group commits that reached the disk.", .counter, [(.none, Double(counters.commits))]),
            family("perfgate_commit_failures_total", "Group commits the store refused; their requests got 503.", .counter, [(.none, Double(counters.commitFailures))]),
            ExpositionFamily(name: "perfgate_commit_duration_seconds") { writer in
                writer.header(name: "perfgate_commit_duration_seconds", help: "Time to write and sync one group commit.", kind: .histogram)
                writer.histogram(
                    name: "perfgate_commit_duration_seconds", labels: .none, counts: counters.commitDuration,
                    boundLabels: SelfMetrics.commitLayout.boundLabels
                )
            },
            family(
                "perfgate_series", "Series held per histogram family.", .gauge,
                HistogramMetric.allCases.map { (labeled("metric", $0.name), Double(gauges.seriesCounts[$0] ?? 0)) }
            ),
            family(
                "perfgate_series_overflow_total", "Observations counted under __overflow__ labels because their family hit the series limit.", .counter,
                HistogramMetric.allCases.map { (labeled("metric", $0.name), Double(counters.overflowed[$0] ?? 0)) }
            ),
            family(
                "perfgate_series_deleted_total", "Series removed from /metrics and the store, by DELETE /v1/series (admin) or the idle TTL (idle).", .counter,
                SeriesDeletion.allCases.map { (labeled("reason", $0.rawValue), Double(counters.deletedSeries[$0] ?? 0)) }
            ),
            family("perfgate_otlp_spans_received_total", "OTLP spans in exports committed to /v1/traces.", .counter, [(.none, Double(counters.spansReceived))]),
            family(
                "perfgate_otlp_spans_refused_total", "OTLP spans refused, by reason (an unusable id, a rule their trace's event broke, a full waiting room); reported in partial_success.", .counter,
                TraceRefusal.allCases.map { (labeled("reason", $0.rawValue), Double(counters.spansRefused[$0] ?? 0)) }
            ),
            family(
                "perfgate_otlp_spans_dropped_total", "OTLP spans dropped because their trace's root span did not arrive within --trace-wait.", .counter,
                [(.none, Double(counters.spansDropped))]
            ),
            family(
                "perfgate_otlp_traces_total", "OTLP traces (one per local root span), by outcome: an event counted, refused, or no stage to count by the end of --trace-wait.", .counter,
                TraceOutcome.allCases.map { (labeled("outcome", $0.rawValue), Double(counters.traces[$0] ?? 0)) }
            ),
            family(
                "perfgate_otlp_events_completed_total", "Events from OTLP traces completed by spans that ended after their root (a stream, a model call).", .counter,
                [(.none, Double(counters.eventsCompleted))]
            ),
            family("perfgate_otlp_waiting_traces", "OTLP traces with spans waiting: for their root span, or a counted root for spans that end after it.", .gauge, [(.none, Double(counters.waitingTraces))]),
            family("perfgate_otlp_waiting_spans", "OTLP spans waiting, against --max-waiting-spans.", .gauge, [(.none, Double(counters.waiting.spans))]),
            family("perfgate_otlp_waiting_bytes", "Bytes the waiting OTLP spans take in the store, against --max-waiting-bytes.", .gauge, [(.none, Double(counters.waiting.bytes))]),
            family("perfgate_pruned_rollups_total", "Minute rollups folded into series bases after the retention.", .counter, [(.none, Double(counters.prunedRollups))]),
            family("perfgate_store_size_bytes", "Size of the SQLite store on disk, WAL included.", .gauge, [(.none, Double(gauges.storeSizeBytes))]),
            family(
                "perfgate_store_corrupt_rows_total", "Rows of the store found damaged when read back since start, each counted once: skipped, their counts lost, everything else served.", .counter,
                [(.none, Double(gauges.corruptRows))]
            ),
            family(
                "perfgate_store_series_collisions_total",
                "New series of a shared store whose id another series holds (a chance of about 1 in 10^10 per database): their counts are not stored.", .counter,
                [(.none, Double(gauges.seriesCollisions))]
            ),
            family("perfgate_reads_running", "Trend queries and status pages reading the store now.", .gauge, [(.none, Double(gauges.reads.running))]),
            family("perfgate_reads_waiting", "Trend queries and status pages waiting for a turn at the store's readers, against --max-queued-reads.", .gauge, [(.none, Double(gauges.reads.waiting))]),
            family("perfgate_reads_refused_total", "Trend queries and status pages answered 503 because --max-queued-reads were waiting already.", .counter, [(.none, Double(gauges.reads.refused))]),
            family("perfgate_reads_cancelled_total", "Trend queries and status pages called off before their answer (perfgate stopping).", .counter, [(.none, Double(gauges.reads.cancelled))]),
            family("perfgate_write_queue_events", "Events waiting for the next group commit.", .gauge, [(.none, Double(gauges.queuedEvents))]),
            family("perfgate_open_connections", "HTTP connections open now.", .gauge, [(.none, Double(gauges.openConnections))]),
            family(
                "perfgate_connection_limit_reached_total", "Times the open connections reached --max-connections.", .counter,
                [(.none, Double(gauges.connectionLimitReached))]
            ),
            family(
                "perfgate_connections_shed_total", "Connections waiting on their client that were closed to make room for a new one at --max-connections.", .counter,
                [(.none, Double(gauges.connectionsShed))]
            ),
            family(
                "perfgate_connections_timed_out_total", "Connections closed because their client missed its --request-timeout deadline.", .counter,
                [(.none, Double(gauges.connectionsTimedOut))]
            ),
            family(
                "perfgate_request_body_bytes", "Bytes of request bodies held in memory now, against --max-body-memory.", .gauge,
                [(.none, Double(gauges.bodyBytesHeld))]
            ),
            family(
                "perfgate_answer_body_bytes", "Bytes of large answers written and not yet taken by their clients' sockets, against --max-body-memory.", .gauge,
                [(.none, Double(gauges.answerBytesHeld))]
            ),
            family(
                "perfgate_answers_dropped_total", "Connections closed because their large answer did not fit beside those clients had not read yet.", .counter,
                [(.none, Double(gauges.answersDropped))]
            ),
        ]
    }
}

/// What an OTLP trace came to.
enum TraceOutcome: String, CaseIterable, Sendable {
    case event
    case refused
    case noStages = "no_stages"
}
