import Foundation
import Logging
import PerfgateCore
import PostgresNIO
import Synchronization

/// The `SharedRollupStore` in PostgreSQL: several replicas write one database, each under its
/// instance name, and every read sees all of them.
///
/// Commits append rows and never update another replica's: replicas do not wait for each
/// other, except on a series both create at once or an idempotency key both answer. Each replica
/// folds its own rows of a series-minute into one every `compactCommits` commits, in a commit's
/// transaction. Calls that find no connection within `leaseTimeout` (the database is down or
/// unreachable) fail at once with `StoreError.unavailable`, so ingest answers 503 and retries.
package final class PostgresRollupStore: SharedRollupStore {
    /// Where the database is, without its password.
    package let location: PostgresLocation
    /// This replica's name: its rows and the cumulative counts it restores.
    package let instance: String
    let layouts: BucketLayouts
    /// Rows found damaged when read back.
    package let corruptRows = CorruptRows()
    package let answerRoom: AnswerRoom
    /// Series whose id another series already holds: their counts are not stored (a keyed id
    /// collides by chance alone, about once in 10^10 databases of 100,000 series).
    package let collidingSeries = CorruptRows()
    /// The database's secret for series ids, read once it is open.
    package var seriesIDKey: SeriesIDKey { idKey.withLock { $0! } }
    private let idKey = Mutex<SeriesIDKey?>(nil)
    /// Answers and bytes this replica kept since it last counted the table (other replicas keep
    /// theirs): the table is counted, and trimmed, each time this reaches a hundredth of the room.
    private let keptSinceCount = Mutex<(answers: Int, bytes: Int)>((0, 0))
    private let client: PostgresClient
    private let running: Task<Void, Never>
    let logger: Logger
    /// The minutes this replica wrote since it last folded its rows, and the commits since.
    /// Only the one writer reaches it.
    private let unfolded = Mutex<(minutes: Set<Int64>, commits: Int)>(([], 0))
    /// Set while the last call found no connection.
    private let down = Atomic<Bool>(false)
    /// The open connections calls have run on, by id (postgres-nio never reuses one).
    private let watched = Mutex<[Int: ConnectionWatch]>([:])

    /// Commits after which a replica folds its rows of the minutes it wrote into one per series-minute.
    package static let compactCommits = 32
    /// How long a call waits for a connection before it fails.
    package static let leaseTimeout: Duration = .seconds(5)
    /// How long it waits once a call found the database unreachable, until one gets through:
    /// while the database is down, ingest answers 503 at once rather than after `leaseTimeout`.
    package static let leaseTimeoutWhileDown: Duration = .milliseconds(250)
    /// How far back a reading of the series catalog looks before the last one: a series is
    /// created in a commit that may still be open when another replica reads (statement timeout: 30 s).
    static let catalogMargin: Int64 = 60_000_000

    /// Connects, applies pending migrations (once, whichever replica gets there first), and checks
    /// that the bucket layouts match the ones the database was written with.
    package static func open(
        _ location: PostgresLocation, instance: String, layouts: BucketLayouts, answerRoom: AnswerRoom = AnswerRoom(),
        logger: Logger = Logger(label: "perfgate.postgres")
    ) async throws -> PostgresRollupStore {
        let store = try PostgresRollupStore(location, instance: instance, layouts: layouts, answerRoom: answerRoom, logger: logger)
        do {
            try await store.withConnection { connection in
                try await PostgresMigrator(connection: connection, logger: logger, location: location).migrate(Migration.embeddedPostgres)
                try await store.checkLayouts(on: connection)
                try await store.readSeriesIDKey(on: connection)
            }
        } catch {
            store.running.cancel()
            throw error
        }
        return store
    }

    private init(_ location: PostgresLocation, instance: String, layouts: BucketLayouts, answerRoom: AnswerRoom, logger: Logger) throws {
        self.answerRoom = answerRoom
        self.location = location
        self.instance = instance
        self.layouts = layouts
        self.logger = logger
        // A writer and two trend windows read at once, plus the replica view and pruning.
        let client = PostgresClient(configuration: try location.clientConfiguration(maximumConnections: 6), backgroundLogger: logger)
        self.client = client
        running = Task { await client.run() }
    }

    deinit {
        running.cancel()
    }

    // MARK: Connections

    /// Runs `body` on a pooled connection. Fails with `unavailable` when no connection comes within
    /// the lease timeout; once `body` has begun it runs to its end (a commit is not cut in half by a
    /// timer; the statement timeout bounds each query), or until its connection closes under it.
    /// The wait for a connection is left behind rather than awaited: the pool may take until its
    /// next connection attempt to give it up.
    package func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let timeout = down.load(ordering: .relaxed) ? Self.leaseTimeoutWhileDown : Self.leaseTimeout
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let call = LeasedCall(continuation)
            let work = Task { [client] in
                do {
                    let value = try await client.withConnection { connection in
                        guard call.begin() else { throw CancellationError() }
                        self.down.store(false, ordering: .relaxed)
                        self.watch(connection, failing: call)
                        defer { self.unwatch(connection) }
                        return try await body(connection)
                    }
                    call.finish(.success(value))
                } catch {
                    call.finish(.failure(Self.described(error)))
                }
            }
            call.timer = Task { [location] in
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                if call.finish(.failure(StoreError.unavailable(what: "\(location)", reason: "no connection within \(timeout)")), onlyIfWaiting: true) {
                    self.down.store(true, ordering: .relaxed)
                    work.cancel()
                }
            }
        }
    }

    /// Fails the call running on `connection` if the connection closes before the call ends.
    ///
    /// A statement written to a connection that the server has just closed (a fast shutdown, a
    /// terminated backend) is never answered by postgres-nio: without this, the writer would wait
    /// on it for good and every later commit behind it. The caller of a call cut off this way was
    /// not acknowledged; whether its last statement took effect is unknown, as with any lost reply.
    private func watch<T: Sendable>(_ connection: PostgresConnection, failing call: LeasedCall<T>) {
        let failure = StoreError.connectionLost("connection \(connection.id) closed")
        let first = watched.withLock { watched in
            defer { watched[connection.id, default: ConnectionWatch()].failRunning = { call.finish(.failure(failure)) } }
            return watched[connection.id] == nil
        }
        // One close callback per connection, not per call: callbacks stay on the future until it completes.
        guard first else { return }
        connection.closeFuture.whenComplete { [weak self] _ in
            self?.watched.withLock { $0.removeValue(forKey: connection.id) }?.failRunning?()
        }
    }

    /// The call on `connection` has ended.
    private func unwatch(_ connection: PostgresConnection) {
        watched.withLock { $0[connection.id]?.failRunning = nil }
    }

    /// What to do when a watched connection closes.
    private struct ConnectionWatch {
        /// Fails the call running on the connection, if one is.
        var failRunning: (@Sendable () -> Void)?
    }

    /// One call's continuation, resumed once: by its result, by the lease timeout while it waits
    /// for a connection, or by its connection closing under it.
    private final class LeasedCall<T: Sendable>: Sendable {
        private enum Phase {
            case waiting(CheckedContinuation<T, any Error>)
            case running(CheckedContinuation<T, any Error>)
            case done
        }

        private let phase: Mutex<Phase>
        private let timerTask = Mutex<Task<Void, Never>?>(nil)

        init(_ continuation: CheckedContinuation<T, any Error>) {
            phase = Mutex(.waiting(continuation))
        }

        /// The timer, cancelled once the call is done.
        var timer: Task<Void, Never>? {
            get { timerTask.withLock { $0 } }
            set {
                let finished = phase.withLock { if case .done = $0 { true } else { false } }
                if finished { newValue?.cancel() } else { timerTask.withLock { $0 = newValue } }
            }
        }

        /// The call has its connection; false when it already timed out.
        func begin() -> Bool {
            phase.withLock { phase in
                guard case .waiting(let continuation) = phase else { return false }
                phase = .running(continuation)
                return true
            }
        }

        /// Resumes the caller unless it was resumed already (or, with `onlyIfWaiting`, once the
        /// call has its connection); true when this resumed it.
        @discardableResult
        func finish(_ result: Result<T, any Error>, onlyIfWaiting: Bool = false) -> Bool {
            let continuation = phase.withLock { phase -> CheckedContinuation<T, any Error>? in
                switch phase {
                case .waiting(let continuation):
                    phase = .done
                    return continuation
                case .running(let continuation) where !onlyIfWaiting:
                    phase = .done
                    return continuation
                default:
                    return nil
                }
            }
            guard let continuation else { return false }
            continuation.resume(with: result)
            timerTask.withLock { $0 }?.cancel()
            return true
        }
    }

    /// Runs `body` in a transaction on `connection`: committed when it returns, rolled back when it throws.
    func transaction<T: Sendable>(_ connection: PostgresConnection, _ body: () async throws -> T) async throws -> T {
        try await run(connection, "BEGIN")
        do {
            let value = try await body()
            try await run(connection, "COMMIT")
            return value
        } catch {
            try? await run(connection, "ROLLBACK")
            throw Self.described(error)
        }
    }

    private func run(_ connection: PostgresConnection, _ sql: String) async throws {
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        } catch {
            throw Self.described(error)
        }
    }

    /// postgres-nio hides the server's message from `description`, to keep data out of logs by
    /// default; perfgate's queries hold no secrets, and an operator needs the message.
    static func described(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError else { return error }
        switch error.code {
        case .serverClosedConnection, .uncleanShutdown, .connectionError, .clientClosedConnection:
            return StoreError.connectionLost("\(error.code)")
        default:
            break
        }
        if let info = error.serverInfo {
            let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return StoreError.postgres("\(info[.severity] ?? "ERROR"): \(info[.message] ?? "no message")\(state)")
        }
        return StoreError.postgres("\(error.code)")
    }

    private func checkLayouts(on connection: PostgresConnection) async throws {
        for metric in HistogramMetric.allCases {
            let configured = layouts[metric].description
            // Written once by the first replica; later ones, and later starts, compare.
            try await connection.query(
                "INSERT INTO bucket_layout (metric, bounds) VALUES (\(metric.name), \(configured)) ON CONFLICT (metric) DO NOTHING", logger: logger
            )
            for try await stored in try await connection.query("SELECT bounds FROM bucket_layout WHERE metric = \(metric.name)", logger: logger).decode(String.self) {
                guard stored == configured else {
                    throw StoreError.layoutChanged(metric: metric.name, stored: stored, configured: configured)
                }
            }
        }
    }

    // MARK: Encoding

    fileprivate static func buffer(_ bytes: [UInt8]) -> ByteBuffer {
        ByteBuffer(bytes: bytes)
    }

    /// Counts of many rows as the row columns hold them (buckets, whole seconds, nanoseconds,
    /// exponential buckets, empty when never recorded), one array per column for `unnest`.
    private struct CountColumns {
        var buckets: [ByteBuffer] = []
        var seconds: [Int64] = []
        var nanoseconds: [Int64] = []
        var exponentials: [ByteBuffer] = []

        mutating func append(_ counts: HistogramCounts) {
            let sum = StoredSum(counts.sumNanoseconds)
            buckets.append(PostgresRollupStore.buffer(CountsBlob.encode(counts.buckets)))
            seconds.append(sum.seconds)
            nanoseconds.append(sum.nanoseconds)
            exponentials.append(counts.exponential.isComplete ? PostgresRollupStore.buffer(ExponentialEncoding.encode(counts.exponential)) : ByteBuffer())
        }
    }

    /// Adds a row's counts into `slot`; false when its blobs are damaged.
    private static func add(buckets: ByteBuffer, exponential: ByteBuffer, sum: Int128, into sums: inout RollupSums, slot: Int) -> Bool {
        buckets.withUnsafeReadableBytes { classic in
            exponential.withUnsafeReadableBytes { encoded in
                sums.add(classic, exponential: encoded.isEmpty ? nil : encoded, sum: sum, to: slot)
            }
        }
    }

    private static func counts(buckets: ByteBuffer, sumSeconds: Int64, sumNanoseconds: Int64, exponential: ByteBuffer, expected: Int?, what: String) throws -> HistogramCounts {
        guard let classic = buckets.withUnsafeReadableBytes({ CountsBlob.decode($0) }), expected.map({ classic.count == $0 }) ?? !classic.isEmpty else {
            throw StoreError.damagedRow("\(what): \(buckets.readableBytes) bytes of bucket counts\(expected.map { ", expected \($0 * 8)" } ?? "")")
        }
        var result = HistogramCounts(
            buckets: classic, exponential: .unrecorded, sumNanoseconds: StoredSum(seconds: sumSeconds, nanoseconds: sumNanoseconds).total
        )
        if exponential.readableBytes > 0 {
            guard let decoded = exponential.withUnsafeReadableBytes({ ExponentialEncoding.decode($0) }) else {
                throw StoreError.damagedRow("\(what): damaged exponential buckets")
            }
            result.exponential = decoded
        }
        return result
    }

    private typealias CountsRow = (Int64, Int64, ByteBuffer, Int64, Int64, ByteBuffer)

    /// A row's counts, when they read and are of the layout of `beside` (another row of theirs);
    /// nil, recorded, when not.
    private static func readable(
        _ buckets: ByteBuffer, _ seconds: Int64, _ nanoseconds: Int64, _ exponential: ByteBuffer, of series: SeriesID, at minute: Int64?,
        beside other: HistogramCounts?, corrupt: CorruptRows
    ) -> HistogramCounts? {
        let what = "\(minute == nil ? "base" : "rollup") of series \(series)\(minute.map { " at minute \($0)" } ?? "")"
        do {
            return try counts(buckets: buckets, sumSeconds: seconds, sumNanoseconds: nanoseconds, exponential: exponential, expected: other?.buckets.count, what: what)
        } catch let StoreError.damagedRow(detail) {
            corrupt.record(detail)
        } catch {
            corrupt.record("\(what): \(error)")
        }
        return nil
    }

    /// What is wrong with a row that did not add, for the operator.
    private static func damage(_ buckets: ByteBuffer, of series: SeriesID, at minute: Int64, expected: Int) -> String {
        RowDamage.rollup(of: series, at: minute, bucketBytes: buckets.readableBytes, expected: expected)
    }

    /// The bucket count of `id`'s family, when `series` holds it.
    private func layoutWidth(of id: SeriesID, in series: [SeriesRecord]) -> Int? {
        // Restore holds every series in id order.
        var low = 0, high = series.count - 1
        while low <= high {
            let middle = (low + high) / 2
            if series[middle].id == id { return layouts[series[middle].key.metric].bucketCount }
            if series[middle].id < id { low = middle + 1 } else { high = middle - 1 }
        }
        return nil
    }

    // MARK: RollupStore

    package func restore(recentSince: Minute) async throws -> RestoredState {
        try await withConnection { [self] connection in
            try await transaction(connection) {
                var series: [SeriesRecord] = []
                for try await (id, metric, values) in try await connection.query(
                    "SELECT id, metric, label_values FROM series ORDER BY id", logger: logger
                ).decode((Int64, String, String).self) {
                    do {
                        series.append(SeriesRecord(id: id, key: try SeriesText.key(metric: metric, labelValues: values, id: id)))
                    } catch let StoreError.damagedRow(detail) {
                        // Its rows are skipped in turn, as rows of a series that is not there.
                        corruptRows.record("series \(id): \(detail)")
                    }
                }
                var sums = RollupSums(series: series.map { ($0.id, layouts[$0.key.metric].bucketCount) })
                // This replica's own counts: what its pruned minutes left in the base, and its minutes.
                let own = try await connection.query(
                    """
                    SELECT 0::bigint, series_id, buckets, sum_s, sum_ns, exponential FROM series_base WHERE instance = \(instance)
                    UNION ALL
                    SELECT minute, series_id, buckets, sum_s, sum_ns, exponential FROM rollup WHERE instance = \(instance)
                    """, logger: logger
                )
                for try await (minute, id, buckets, seconds, nanoseconds, exponential) in own.decode(CountsRow.self) {
                    guard let slot = sums.slot(of: id) else {
                        corruptRows.record("row of series \(id) at minute \(minute) of \(instance): no such series")
                        continue
                    }
                    // All or nothing: a damaged row adds none of its counts.
                    guard Self.add(buckets: buckets, exponential: exponential, sum: StoredSum(seconds: seconds, nanoseconds: nanoseconds).total, into: &sums, slot: slot) else {
                        corruptRows.record(Self.damage(buckets, of: id, at: minute, expected: sums.bucketCount(ofSlot: slot)))
                        continue
                    }
                }
                sums.finish()
                // Every replica's recent minutes, for the stage share window.
                var recent: [SeriesID: [Minute: HistogramCounts]] = [:]
                for try await (minute, id, buckets, seconds, nanoseconds, exponential) in try await connection.query(
                    "SELECT minute, series_id, buckets, sum_s, sum_ns, exponential FROM rollup WHERE minute >= \(recentSince.index)", logger: logger
                ).decode(CountsRow.self) {
                    guard let width = layoutWidth(of: id, in: series) else { continue }
                    let counts: HistogramCounts
                    do {
                        counts = try Self.counts(buckets: buckets, sumSeconds: seconds, sumNanoseconds: nanoseconds, exponential: exponential, expected: width, what: "rollup of series \(id) at minute \(minute)")
                    } catch let StoreError.damagedRow(detail) {
                        corruptRows.record(detail)
                        continue
                    }
                    recent[id, default: [:]][Minute(index: minute), default: HistogramCounts(bucketCount: counts.buckets.count)].add(counts)
                }
                var lastMinutes: [SeriesID: Minute] = [:]
                for try await (id, minute) in try await connection.query(
                    "SELECT series_id, max(minute) FROM rollup GROUP BY series_id", logger: logger
                ).decode((Int64, Int64).self) {
                    lastMinutes[id] = Minute(index: minute)
                }
                var pendingTraces: [TraceID: WaitingRows] = [:]
                for try await (high, low, spans, bytes) in try await connection.query(
                    "SELECT trace_high, trace_low, count(*), sum(length(span))::bigint FROM pending_span GROUP BY trace_high, trace_low", logger: logger
                ).decode((Int64, Int64, Int64, Int64).self) {
                    pendingTraces[TraceID(high: UInt64(bitPattern: high), low: UInt64(bitPattern: low))] = WaitingRows(spans: Int(spans), bytes: Int(bytes))
                }
                return RestoredState(
                    series: series, totals: sums.totals(includingEmpty: true),
                    recent: recent.flatMap { id, minutes in minutes.map { MinuteRollup(seriesID: id, minute: $0.key, counts: $0.value) } },
                    lastMinutes: lastMinutes, pendingTraces: pendingTraces
                )
            }
        }
    }

    package func commit(_ batch: CommitBatch) async throws {
        let compacting = unfolded.withLock { state in
            for rollup in batch.rollups { state.minutes.insert(rollup.minute.index) }
            return state.commits + 1 >= Self.compactCommits ? state.minutes : nil
        }
        // Most commits under steady load only add counts: one INSERT is atomic on its own, and
        // saves the two round trips of BEGIN and COMMIT.
        let countsOnly = batch.newSeries.isEmpty && batch.answers.isEmpty && batch.settledTraces.isEmpty && batch.pendingSpans.isEmpty && compacting == nil
        let added = (answers: batch.answers.count, bytes: batch.answers.reduce(0) { $0 + $1.body.count })
        let counting = !batch.answers.isEmpty && keptSinceCount.withLock { kept in
            kept.answers + added.answers >= max(1, answerRoom.maxAnswers / 100) || kept.bytes + added.bytes >= max(1, answerRoom.maxBytes / 100)
        }
        let forgotten: Int
        do {
            forgotten = try await withConnection { [self] connection in
                if countsOnly {
                    if !batch.rollups.isEmpty { try await insert(batch.rollups, on: connection) }
                    return 0
                }
                return try await transaction(connection) {
                    try await write(batch, on: connection)
                    if let compacting { try await compact(minutes: compacting, on: connection) }
                    return counting ? try await forgetOldestAnswers(on: connection) : 0
                }
            }
        } catch StoreError.connectionLost(let detail) {
            // The COMMIT (or the lone INSERT) may have reached the server before the connection went.
            throw CommitOutcomeUnknown(reason: "the connection to the database \(location) was lost before the commit was answered (\(detail))")
        }
        answerRoom.forgot(forgotten)
        keptSinceCount.withLock { kept in
            kept = counting ? (0, 0) : (kept.answers + added.answers, kept.bytes + added.bytes)
        }
        unfolded.withLock { state in
            if let compacting {
                state.minutes.subtract(compacting)
                state.commits = 0
            } else {
                state.commits += 1
            }
        }
    }

    private func write(_ batch: CommitBatch, on connection: PostgresConnection) async throws {
        var colliding: Set<SeriesID> = []
        if !batch.newSeries.isEmpty {
            // In id order, so two replicas creating the same series lock them in the same order.
            let records = batch.newSeries.sorted { $0.id < $1.id }
            let ids = records.map(\.id)
            let metrics = records.map(\.key.metric.name)
            let values = records.map { SeriesText.joined($0.key.labelValues) }
            try await connection.query(
                """
                INSERT INTO series (id, metric, label_values)
                SELECT * FROM unnest(\(ids)::bigint[], \(metrics)::text[], \(values)::text[])
                ON CONFLICT DO NOTHING
                """, logger: logger
            )
            // Two series of one id would mix their counts: the newcomer's are not stored, and only
            // its own; the rest of the commit goes ahead.
            for try await (id, metric, stored) in try await connection.query(
                """
                SELECT s.id, s.metric, s.label_values FROM series s
                JOIN unnest(\(ids)::bigint[], \(metrics)::text[], \(values)::text[]) AS n (id, metric, label_values) ON s.id = n.id
                WHERE s.metric <> n.metric OR s.label_values <> n.label_values
                """, logger: logger
            ).decode((Int64, String, String).self) {
                colliding.insert(id)
                let newcomer = records.first { $0.id == id }!.key
                collidingSeries.record(
                    "series \(newcomer.metric.name) {\(newcomer.labelValues.joined(separator: ", "))} has id \(id), which \(metric) {\(stored.split(separator: SeriesText.separator).joined(separator: ", "))} holds: its counts are not stored"
                )
            }
        }
        if !batch.answers.isEmpty {
            let answers = batch.answers.sorted { $0.key < $1.key }
            let keys = answers.map(\.key)
            var taken = Set(keys)
            for try await key in try await connection.query(
                """
                INSERT INTO idempotent_answer (key, body_fingerprint, status, body, created_at)
                SELECT * FROM unnest(
                    \(keys)::text[], \(answers.map { Int64(bitPattern: $0.bodyFingerprint) })::bigint[],
                    \(answers.map { Int32($0.status) })::integer[], \(answers.map { Self.buffer($0.body) })::bytea[],
                    \(answers.map(\.createdAt))::bigint[])
                ON CONFLICT (key) DO UPDATE SET
                    body_fingerprint = excluded.body_fingerprint, status = excluded.status, body = excluded.body, created_at = excluded.created_at
                WHERE idempotent_answer.created_at < \(batch.answersKeptSince)
                RETURNING key
                """, logger: logger
            ).decode(String.self) {
                taken.remove(key)
            }
            if !taken.isEmpty { throw AnswerTaken(keys: taken.sorted()) }
        }
        let rollups = colliding.isEmpty ? batch.rollups : batch.rollups.filter { !colliding.contains($0.seriesID) }
        if !rollups.isEmpty {
            try await insert(rollups, on: connection)
        }
        if !batch.settledTraces.isEmpty {
            try await connection.query(
                """
                DELETE FROM pending_span WHERE (trace_high, trace_low) IN (
                    SELECT * FROM unnest(\(batch.settledTraces.map { Int64(bitPattern: $0.high) })::bigint[], \(batch.settledTraces.map { Int64(bitPattern: $0.low) })::bigint[]))
                """, logger: logger
            )
        }
        if !batch.pendingSpans.isEmpty {
            let spans = batch.pendingSpans
            try await connection.query(
                """
                INSERT INTO pending_span (trace_high, trace_low, span_id, received_at, span)
                SELECT * FROM unnest(
                    \(spans.map { Int64(bitPattern: $0.span.traceID.high) })::bigint[], \(spans.map { Int64(bitPattern: $0.span.traceID.low) })::bigint[],
                    \(spans.map { Int64(bitPattern: $0.span.spanID) })::bigint[], \(spans.map(\.receivedAt))::bigint[],
                    \(spans.map { Self.buffer($0.span.encoded()) })::bytea[])
                ON CONFLICT DO NOTHING
                """, logger: logger
            )
        }
    }

    /// Reads the secret the first migration made for series ids.
    private func readSeriesIDKey(on connection: PostgresConnection) async throws {
        for try await bytes in try await connection.query("SELECT key FROM series_id_key WHERE id = 1", logger: logger).decode(ByteBuffer.self) {
            idKey.withLock { $0 = SeriesIDKey(bytes: bytes.readableBytesView) }
        }
        guard idKey.withLock({ $0 }) != nil else {
            throw StoreError.damagedRow("series_id_key holds no 16-byte key: the database was changed behind perfgate's back")
        }
    }

    /// Counts every replica's kept answers and, past the room, removes the oldest until what is
    /// kept is down to its target; returns how many went. In the commit's transaction.
    private func forgetOldestAnswers(on connection: PostgresConnection) async throws -> Int {
        var kept = (answers: 0, bytes: 0)
        for try await (answers, bytes) in try await connection.query(
            "SELECT count(*), coalesce(sum(octet_length(body)), 0)::bigint FROM idempotent_answer", logger: logger
        ).decode((Int64, Int64).self) {
            kept = (Int(answers), Int(bytes))
        }
        guard answerRoom.isExceeded(answers: kept.answers, bytes: kept.bytes) else { return 0 }
        let target = answerRoom.target
        let answersOver = Int64(max(0, kept.answers - target.answers))
        let bytesOver = Int64(max(0, kept.bytes - target.bytes))
        // The oldest first: each row goes while the rows before it leave too many answers or bytes.
        var forgotten = 0
        for try await _ in try await connection.query(
            """
            WITH ordered AS (
                SELECT key, row_number() OVER w AS position, sum(octet_length(body)) OVER w - octet_length(body) AS bytes_before
                FROM idempotent_answer WINDOW w AS (ORDER BY created_at, key)
            )
            DELETE FROM idempotent_answer WHERE key IN (
                SELECT key FROM ordered WHERE position <= \(answersOver) OR bytes_before < \(bytesOver)
            ) RETURNING 1
            """, logger: logger
        ) {
            forgotten += 1
        }
        return forgotten
    }

    /// Appends rows of this replica, one statement for all of them.
    private func insert(_ rollups: [MinuteRollup], on connection: PostgresConnection) async throws {
        var columns = CountColumns()
        for rollup in rollups { columns.append(rollup.counts) }
        try await connection.query(
            """
            INSERT INTO rollup (instance, minute, series_id, buckets, sum_s, sum_ns, exponential)
            SELECT \(instance), * FROM unnest(
                \(rollups.map(\.minute.index))::bigint[], \(rollups.map(\.seriesID))::bigint[], \(columns.buckets)::bytea[],
                \(columns.seconds)::bigint[], \(columns.nanoseconds)::bigint[], \(columns.exponentials)::bytea[])
            """, logger: logger
        )
    }

    /// Folds this replica's rows of `minutes` into one per series-minute, in the caller's transaction.
    private func compact(minutes: Set<Int64>, on connection: PostgresConnection) async throws {
        guard !minutes.isEmpty else { return }
        var merged: [MergeKey: HistogramCounts] = [:]
        var rows = 0
        for try await (minute, id, buckets, seconds, nanoseconds, exponential) in try await connection.query(
            """
            DELETE FROM rollup WHERE instance = \(instance) AND minute = ANY(\(Array(minutes))::bigint[])
            RETURNING minute, series_id, buckets, sum_s, sum_ns, exponential
            """, logger: logger
        ).decode(CountsRow.self) {
            // A damaged row is dropped here, counted: its minute keeps what the others hold.
            guard let counts = Self.readable(buckets, seconds, nanoseconds, exponential, of: id, at: minute, beside: merged[MergeKey(series: id, minute: minute)], corrupt: corruptRows) else { continue }
            let key = MergeKey(series: id, minute: minute)
            if merged[key] == nil { merged[key] = counts } else { merged[key]!.add(counts) }
            rows += 1
        }
        guard rows > 0 else { return }
        try await insert(merged.map { MinuteRollup(seriesID: $0.key.series, minute: Minute(index: $0.key.minute), counts: $0.value) }, on: connection)
    }

    private struct MergeKey: Hashable {
        let series: SeriesID
        let minute: Int64
    }

    package func prune(before cutoff: Minute, answersBefore: Int64) async throws -> PruneReport {
        try await withConnection { [self] connection in
            try await transaction(connection) {
                // One replica prunes at a time; the others find the lock taken and leave it to it.
                var locked = false
                for try await granted in try await connection.query("SELECT pg_try_advisory_xact_lock(\(Self.pruneLock))", logger: logger).decode(Bool.self) {
                    locked = granted
                }
                guard locked else { return PruneReport(rollupsFolded: 0) }
                var folded: [BaseKey: HistogramCounts] = [:]
                var rows = 0
                for try await (instance, id, buckets, seconds, nanoseconds, exponential) in try await connection.query(
                    "DELETE FROM rollup WHERE minute < \(cutoff.index) RETURNING instance, series_id, buckets, sum_s, sum_ns, exponential", logger: logger
                ).decode((String, Int64, ByteBuffer, Int64, Int64, ByteBuffer).self) {
                    let key = BaseKey(instance: instance, series: id)
                    guard let counts = Self.readable(buckets, seconds, nanoseconds, exponential, of: id, at: nil, beside: folded[key], corrupt: corruptRows) else { continue }
                    if folded[key] == nil { folded[key] = counts } else { folded[key]!.add(counts) }
                    rows += 1
                }
                if !folded.isEmpty {
                    let keys = Array(folded.keys)
                    for try await (instance, id, buckets, seconds, nanoseconds, exponential) in try await connection.query(
                        """
                        DELETE FROM series_base WHERE (instance, series_id) IN (SELECT * FROM unnest(\(keys.map(\.instance))::text[], \(keys.map(\.series))::bigint[]))
                        RETURNING instance, series_id, buckets, sum_s, sum_ns, exponential
                        """, logger: logger
                    ).decode((String, Int64, ByteBuffer, Int64, Int64, ByteBuffer).self) {
                        let key = BaseKey(instance: instance, series: id)
                        guard let base = Self.readable(buckets, seconds, nanoseconds, exponential, of: id, at: nil, beside: folded[key], corrupt: corruptRows) else { continue }
                        folded[key]!.add(base)
                    }
                    let bases = Array(folded)
                    var columns = CountColumns()
                    for (_, counts) in bases { columns.append(counts) }
                    try await connection.query(
                        """
                        INSERT INTO series_base (instance, series_id, buckets, sum_s, sum_ns, exponential)
                        SELECT * FROM unnest(
                            \(bases.map(\.key.instance))::text[], \(bases.map(\.key.series))::bigint[], \(columns.buckets)::bytea[],
                            \(columns.seconds)::bigint[], \(columns.nanoseconds)::bigint[], \(columns.exponentials)::bytea[])
                        """, logger: logger
                    )
                }
                var forgotten = 0
                for try await _ in try await connection.query(
                    "DELETE FROM idempotent_answer WHERE created_at < \(answersBefore) RETURNING 1", logger: logger
                ) {
                    forgotten += 1
                }
                return PruneReport(rollupsFolded: rows, answersForgotten: forgotten)
            }
        }
    }

    /// The advisory lock key pruning takes ("perfgate" in ASCII).
    private static let pruneLock: Int64 = 0x7065_7266_6761_7465

    private struct BaseKey: Hashable {
        let instance: String
        let series: SeriesID
    }

    package func delete(_ series: Set<SeriesID>, recentSince: Minute) async throws -> [MinuteRollup] {
        let ids = Array(series)
        return try await withConnection { [self] connection in
            try await transaction(connection) {
                var recent: [MergeKey: HistogramCounts] = [:]
                for try await (minute, id, buckets, seconds, nanoseconds, exponential) in try await connection.query(
                    "DELETE FROM rollup WHERE series_id = ANY(\(ids)::bigint[]) RETURNING minute, series_id, buckets, sum_s, sum_ns, exponential", logger: logger
                ).decode(CountsRow.self) where minute >= recentSince.index {
                    let key = MergeKey(series: id, minute: minute)
                    guard let counts = Self.readable(buckets, seconds, nanoseconds, exponential, of: id, at: minute, beside: recent[key], corrupt: corruptRows) else { continue }
                    if recent[key] == nil { recent[key] = counts } else { recent[key]!.add(counts) }
                }
                try await connection.query("DELETE FROM series_base WHERE series_id = ANY(\(ids)::bigint[])", logger: logger)
                try await connection.query("DELETE FROM series WHERE id = ANY(\(ids)::bigint[])", logger: logger)
                return recent.map { MinuteRollup(seriesID: $0.key.series, minute: Minute(index: $0.key.minute), counts: $0.value) }
            }
        }
    }

    package func answer(forKey key: String, since: Int64) async throws -> IdempotentAnswer? {
        try await withConnection { [self] connection in
            var found: IdempotentAnswer?
            for try await (fingerprint, status, body, createdAt) in try await connection.query(
                "SELECT body_fingerprint, status, body, created_at FROM idempotent_answer WHERE key = \(key) AND created_at >= \(since)", logger: logger
            ).decode((Int64, Int32, ByteBuffer, Int64).self) {
                found = IdempotentAnswer(
                    key: key, bodyFingerprint: UInt64(bitPattern: fingerprint), status: Int(status), body: Array(buffer: body), createdAt: createdAt
                )
            }
            return found
        }
    }

    package func pendingSpans(of traces: Set<TraceID>) async throws -> [PendingSpan] {
        guard !traces.isEmpty else { return [] }
        let list = Array(traces)
        return try await withConnection { [self] connection in
            try await Self.spans(try await connection.query(
                """
                SELECT received_at, span FROM pending_span WHERE (trace_high, trace_low) IN (
                    SELECT * FROM unnest(\(list.map { Int64(bitPattern: $0.high) })::bigint[], \(list.map { Int64(bitPattern: $0.low) })::bigint[]))
                """, logger: logger
            ), corrupt: corruptRows)
        }
    }

    package func dropPendingSpans(receivedBefore cutoff: Int64, maxTraces: Int, maxSpans: Int) async throws -> [PendingSpan] {
        try await withConnection { [self] connection in
            // The expired traces and their sizes first, to take whole traces up to the bound.
            var chosen: [(Int64, Int64)] = []
            var taken = 0
            for try await (high, low, spans) in try await connection.query(
                """
                SELECT trace_high, trace_low, count(*) FROM pending_span WHERE (trace_high, trace_low) IN (
                    SELECT DISTINCT trace_high, trace_low FROM pending_span WHERE received_at < \(cutoff) LIMIT \(maxTraces))
                GROUP BY trace_high, trace_low
                """, logger: logger
            ).decode((Int64, Int64, Int64).self) {
                if taken > 0, taken + Int(spans) > maxSpans { continue }
                taken += Int(spans)
                chosen.append((high, low))
            }
            guard !chosen.isEmpty else { return [] }
            // DELETE … RETURNING: when two replicas drop at once, each span is returned (and counted) once.
            return try await Self.spans(try await connection.query(
                """
                DELETE FROM pending_span WHERE (trace_high, trace_low) IN (
                    SELECT * FROM unnest(\(chosen.map(\.0))::bigint[], \(chosen.map(\.1))::bigint[]))
                RETURNING received_at, span
                """, logger: logger
            ), corrupt: corruptRows)
        }
    }

    private static func spans(_ rows: PostgresRowSequence, corrupt: CorruptRows) async throws -> [PendingSpan] {
        var spans: [PendingSpan] = []
        for try await (receivedAt, encoded) in rows.decode((Int64, ByteBuffer).self) {
            let bytes = Array(buffer: encoded)
            guard let span = bytes.withUnsafeBufferPointer({ OTLPSpan(encoded: $0) }) else {
                // As if it had never come.
                corrupt.record("a row of pending_span received at \(receivedAt): damaged")
                continue
            }
            spans.append(PendingSpan(span, receivedAt: receivedAt))
        }
        return spans
    }

    package func windowTotals(
        of metric: HistogramMetric, series: Set<SeriesID>, minutes: ClosedRange<Minute>
    ) async throws -> [SeriesID: HistogramCounts] {
        guard !series.isEmpty else { return [:] }
        let ids = Array(series)
        return try await withConnection { [self] connection in
            var window = RollupSums(series: ids.map { ($0, layouts[metric].bucketCount) })
            for try await (minute, id, buckets, seconds, nanoseconds, exponential) in try await connection.query(
                """
                SELECT minute, series_id, buckets, sum_s, sum_ns, exponential FROM rollup
                WHERE minute BETWEEN \(minutes.lowerBound.index) AND \(minutes.upperBound.index) AND series_id = ANY(\(ids)::bigint[])
                """, logger: logger
            ).decode(CountsRow.self) {
                guard let slot = window.slot(of: id) else { continue }
                guard Self.add(buckets: buckets, exponential: exponential, sum: StoredSum(seconds: seconds, nanoseconds: nanoseconds).total, into: &window, slot: slot) else {
                    corruptRows.record(Self.damage(buckets, of: id, at: minute, expected: layouts[metric].bucketCount))
                    continue
                }
            }
            window.finish()
            return window.totals(includingEmpty: false)
        }
    }

    package func groupedTotals(
        of metric: HistogramMetric, groups: [SeriesID: Int], groupCount: Int, minutes: ClosedRange<Minute>, stepMinutes: Int64
    ) async throws -> [[HistogramCounts]] {
        precondition(stepMinutes >= 1, "a step is at least a minute")
        let steps = Int((minutes.lowerBound.distance(to: minutes.upperBound) + stepMinutes) / stepMinutes)
        let width = layouts[metric].bucketCount
        let ids = Array(groups.keys)
        return try await withConnection { [self] connection in
            var sums = RollupSums(slots: groupCount * steps, bucketCount: width)
            if !ids.isEmpty {
                for try await (minute, id, buckets, seconds, nanoseconds, exponential) in try await connection.query(
                    """
                    SELECT minute, series_id, buckets, sum_s, sum_ns, exponential FROM rollup
                    WHERE minute BETWEEN \(minutes.lowerBound.index) AND \(minutes.upperBound.index) AND series_id = ANY(\(ids)::bigint[])
                    """, logger: logger
                ).decode(CountsRow.self) {
                    guard let group = groups[id] else { continue }
                    let slot = group * steps + Int((minute - minutes.lowerBound.index) / stepMinutes)
                    guard Self.add(buckets: buckets, exponential: exponential, sum: StoredSum(seconds: seconds, nanoseconds: nanoseconds).total, into: &sums, slot: slot) else {
                        corruptRows.record(Self.damage(buckets, of: id, at: minute, expected: width))
                        continue
                    }
                }
            }
            sums.finish()
            return (0..<groupCount).map { group in (0..<steps).map { step in sums.counts(ofSlot: group * steps + step) } }
        }
    }

    package func sizeInBytes() async throws -> Int64 {
        try await withConnection { [self] connection in
            var size: Int64 = 0
            for try await bytes in try await connection.query("SELECT pg_database_size(current_database())", logger: logger).decode(Int64.self) {
                size = bytes
            }
            return size
        }
    }

    package func checkpoint() async throws {
        // Leaves one row per series-minute of this replica: the next start reads less.
        let minutes = unfolded.withLock { $0.minutes }
        guard !minutes.isEmpty else { return }
        try await withConnection { [self] connection in
            try await transaction(connection) { try await compact(minutes: minutes, on: connection) }
        }
        unfolded.withLock { $0 = ([], 0) }
    }

    // MARK: SharedRollupStore

    package func series(createdSince since: CatalogCursor?) async throws -> (records: [SeriesRecord], next: CatalogCursor) {
        // The first reading takes every series: 0 is the epoch.
        let from = max(0, (since?.microseconds ?? 0) - Self.catalogMargin)
        return try await withConnection { [self] connection in
            var now: Int64 = 0
            for try await clock in try await connection.query(
                "SELECT (extract(epoch FROM now()) * 1000000)::bigint", logger: logger
            ).decode(Int64.self) {
                now = clock
            }
            var records: [SeriesRecord] = []
            for try await (id, metric, values) in try await connection.query(
                "SELECT id, metric, label_values FROM series WHERE created_at >= to_timestamp(\(Double(from) / 1_000_000))", logger: logger
            ).decode((Int64, String, String).self) {
                records.append(SeriesRecord(id: id, key: try SeriesText.key(metric: metric, labelValues: values, id: id)))
            }
            return (records, CatalogCursor(microseconds: now))
        }
    }

    package func minuteSums(of metrics: [HistogramMetric], since: Minute) async throws -> [SeriesMinuteSum] {
        try await withConnection { [self] connection in
            var sums: [SeriesMinuteSum] = []
            for try await (id, minute, seconds, nanoseconds) in try await connection.query(
                """
                SELECT r.series_id, r.minute, sum(r.sum_s)::bigint, sum(r.sum_ns)::bigint FROM rollup r JOIN series s ON s.id = r.series_id
                WHERE r.minute >= \(since.index) AND s.metric = ANY(\(metrics.map(\.name))::text[])
                GROUP BY r.series_id, r.minute
                """, logger: logger
            ).decode((Int64, Int64, Int64, Int64).self) {
                sums.append(SeriesMinuteSum(seriesID: id, minute: Minute(index: minute), sumNanoseconds: Int128(seconds) * 1_000_000_000 + Int128(nanoseconds)))
            }
            return sums
        }
    }

    package func written(_ series: Set<SeriesID>, since: Minute) async throws -> Set<SeriesID> {
        guard !series.isEmpty else { return [] }
        let ids = Array(series)
        return try await withConnection { [self] connection in
            var written: Set<SeriesID> = []
            for try await id in try await connection.query(
                "SELECT DISTINCT series_id FROM rollup WHERE minute >= \(since.index) AND series_id = ANY(\(ids)::bigint[])", logger: logger
            ).decode(Int64.self) {
                written.insert(id)
            }
            return written
        }
    }
}
