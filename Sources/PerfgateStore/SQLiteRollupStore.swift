import CSQLite
import Foundation
import NIOCore
import NIOPosix
import PerfgateCore
import Synchronization

/// How hard a commit presses data to disk before the request is acknowledged.
package enum Durability: String, Sendable, CaseIterable {
    /// `synchronous=FULL`: an acknowledged batch survives a crash of the process and of the machine.
    case full
    /// `synchronous=NORMAL`: it survives a crash of the process; a power cut may lose the last commits.
    case normal
}

/// The durable `RollupStore`: a SQLite file in WAL mode, one writer connection and two readers
/// (a trend query reads its two windows at once).
///
/// SQLite's calls block (a commit waits for fsync), so each runs on a thread of the store's own:
/// writes on the writer's thread, reads on one thread per reader connection. A cooperative
/// thread is never held, and a slow trend read never delays a commit.
package final class SQLiteRollupStore: RollupStore {
    /// The database file.
    package let path: String
    let layouts: BucketLayouts
    /// Rows found damaged when read back.
    package let corruptRows: CorruptRows
    package let answerRoom: AnswerRoom
    private let writer: Mutex<WriteSide>
    private let readers: [ReadSide]
    private let writerThread: WriterThread
    private let readerThreads: NIOThreadPool
    /// Where reads' answers are handed back (see `onReader`).
    private let readAnswers: any EventLoop

    /// Opens the store (see `init`) on a thread of its own, off the caller's cooperative thread.
    package static func open(
        path: String, layouts: BucketLayouts, durability: Durability = .full, answerRoom: AnswerRoom = AnswerRoom()
    ) async throws -> SQLiteRollupStore {
        try await NIOThreadPool.singleton.runIfActive { try SQLiteRollupStore(path: path, layouts: layouts, durability: durability, answerRoom: answerRoom) }
    }

    /// Opens or creates the store at `path` (and its folder), applies pending migrations,
    /// and checks that the bucket layouts match the ones the file was written with.
    package init(path: String, layouts: BucketLayouts, durability: Durability = .full, answerRoom: AnswerRoom = AnswerRoom()) throws {
        self.path = path
        self.layouts = layouts
        self.answerRoom = answerRoom
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        // A file that already holds bytes must already be a perfgate store: a damaged or
        // truncated one can read as an empty database, and must not silently become a new store.
        let existing = ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.intValue ?? 0 > 0
        let connection = try SQLiteConnection(path: path, create: true)
        do throws(SQLiteError) {
            // The first read of the schema tells a damaged or foreign file apart from a database.
            let perfgateTables = try connection.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'") ?? 0
            if existing && perfgateTables == 0 {
                throw SQLiteError(code: SQLITE_NOTADB, message: "the file holds no perfgate tables", context: "opening \(path)")
            }
        } catch {
            throw StoreError.unreadable(path: path, underlying: error)
        }
        try Self.checkWritable(connection)
        let journalMode = try connection.scalarText("PRAGMA journal_mode = WAL")
        guard journalMode?.lowercased() == "wal" else {
            throw SQLiteError(code: SQLITE_ERROR, message: "journal mode is \(journalMode ?? "unknown"), WAL is required", context: "opening \(path)")
        }
        try connection.execute("PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
        try Migrator(connection: connection, migrations: Migration.embedded).migrate()
        let corrupt = CorruptRows()
        corruptRows = corrupt
        try CountsBlob.registerAddFunction(on: connection, corrupt: corrupt)
        try ExponentialBlob.registerAddFunction(on: connection, corrupt: corrupt)
        try Self.checkLayouts(layouts, on: connection)
        let side = try WriteSide(connection: connection)
        // Start-up reads the minute rows alone: fold what the last run left in the log first.
        try connection.transaction { try Self.fold(side, corrupt: corrupt) }
        writer = Mutex(side)
        readers = try (0..<2).map { _ in
            let reader = try SQLiteConnection(path: path, readOnly: true)
            // Reads of large windows come straight from the page cache, without a copy per page.
            try reader.execute("PRAGMA mmap_size = 1073741824")
            return ReadSide(reader)
        }
        // Started last: nothing above may throw once they run, or they would never be stopped.
        writerThread = WriterThread()
        // Made here, on an ordinary thread: a thread inherits its creator's scheduling class,
        // and the readers' is the idle one.
        readAnswers = MultiThreadedEventLoopGroup.singleton.next()
        readerThreads = NIOThreadPool(numberOfThreads: readers.count)
        readerThreads.start()
    }

    deinit {
        writerThread.shutdown()
        readerThreads.shutdownGracefully { _ in }
    }

    package var writeExecutor: (any TaskExecutor)? { writerThread }

    /// Runs `body` on the writer's thread, inline when the caller is on it already.
    func onWriter<T: Sendable>(_ body: @escaping @Sendable (WriteSide) throws -> T) async throws -> T {
        try await writerThread.run { try self.writer.withLock { try body($0) } }
    }

    /// Runs `body` on a reader thread, with a free reader connection; a cancelled task's read
    /// stops where it is and throws `CancellationError`.
    private func onReader<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        let read = ReadInterruption()
        return try await withTaskCancellationHandler {
            // The answer goes through an event loop rather than resuming the caller from the
            // reader thread: resuming a task there may make the concurrency runtime start a
            // worker thread from it, which would inherit the idle scheduling class.
            try await readerThreads.runIfActive(eventLoop: readAnswers) { [readers] in try Self.withReader(readers) { try read.during($0, body) } }.get()
        } onCancel: {
            read.cancel()
        }
    }

    package func checkpoint() async throws {
        // Moves every committed page from the write-ahead log into the database file and
        // empties the log, so the file alone holds the store (a copy of it is complete).
        try await onWriter { [corrupt = corruptRows] side in
            try side.connection.transaction { try Self.fold(side, corrupt: corrupt) }
            side.unfolded = (0, 0)
            try side.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    /// Refuses a file SQLite could open for reading only: it would otherwise serve what it holds
    /// and fail every write, acknowledging nothing it is sent.
    private static func checkWritable(_ connection: SQLiteConnection) throws {
        if sqlite3_db_readonly(connection.handle, "main") == 1 {
            throw StoreError.notWritable(path: connection.path, reason: "the file or its file system is read-only")
        }
        do throws(SQLiteError) {
            // Taking the write lock touches the journal beside the file, so a read-only folder shows here.
            try connection.execute("BEGIN IMMEDIATE", context: "probing for write access")
            try connection.execute("CREATE TABLE IF NOT EXISTS perfgate_write_probe (x INTEGER); DROP TABLE perfgate_write_probe", context: "probing for write access")
            try connection.execute("ROLLBACK", context: "probing for write access")
        } catch {
            if sqlite3_get_autocommit(connection.handle) == 0 { try? connection.execute("ROLLBACK") }
            throw StoreError.notWritable(path: connection.path, reason: error.message)
        }
    }

    /// Runs `body` on a free reader connection, or waits for the first.
    private static func withReader<T: Sendable>(_ readers: [ReadSide], _ body: (SQLiteConnection) throws -> T) throws -> T {
        for reader in readers.dropFirst() {
            if let result = try reader.connection.withLockIfAvailable({ connection in try body(connection) }) { return result }
        }
        return try readers[0].connection.withLock { connection in try body(connection) }
    }

    private static func checkLayouts(_ layouts: BucketLayouts, on connection: SQLiteConnection) throws {
        let select = try connection.prepare("SELECT bounds FROM bucket_layout WHERE metric = ?")
        let insert = try connection.prepare("INSERT INTO bucket_layout (metric, bounds) VALUES (?, ?)")
        for metric in HistogramMetric.allCases {
            let configured = layouts[metric].description
            select.bind(1, metric.name)
            let stored = try select.step() ? select.text(0) : nil
            select.reset()
            if let stored {
                guard stored == configured else {
                    throw StoreError.layoutChanged(metric: metric.name, stored: stored, configured: configured)
                }
            } else {
                insert.bind(1, metric.name)
                insert.bind(2, configured)
                try insert.run()
            }
        }
    }

    // MARK: RollupStore

    package func restore(recentSince: Minute) async throws -> RestoredState {
        try await onReader { [layouts, corrupt = corruptRows] connection in
            var series: [SeriesRecord] = []
            var bases: [(slot: Int, counts: HistogramCounts)] = []
            let seriesRows = try connection.prepare(
                "SELECT id, metric, label_values, base_buckets, base_sum_s, base_sum_ns, base_exponential, exponential_complete FROM series ORDER BY id"
            )
            var incomplete: [Int] = []
            while try seriesRows.step() {
                let id = seriesRows.int64(0)
                let key: SeriesKey
                do {
                    key = try SeriesText.key(metric: seriesRows.text(1), labelValues: seriesRows.text(2), id: id)
                } catch let StoreError.damagedRow(detail) {
                    // Its rollups are skipped in turn, as rows of a series that is not there.
                    corrupt.record("series \(id): \(detail)")
                    continue
                }
                let complete = seriesRows.int64(7) == 1
                if !complete { incomplete.append(series.count) }
                if !seriesRows.isNull(3) || !seriesRows.isNull(6) {
                    do {
                        var base = seriesRows.isNull(3)
                            ? HistogramCounts(bucketCount: layouts[key.metric].bucketCount)
                            : try Self.counts(in: seriesRows, from: 3, exponentialColumn: nil, expected: layouts[key.metric].bucketCount, what: "base of series \(id)")
                        base.exponential = complete ? try Self.exponential(in: seriesRows, column: 6, what: "base of series \(id)") ?? ExponentialBuckets() : .unrecorded
                        bases.append((series.count, base))
                    } catch let StoreError.damagedRow(detail) {
                        corrupt.record(detail)
                    }
                }
                series.append(SeriesRecord(id: id, key: key))
            }
            // A million rows are summed in place, one lookup each (RollupSums).
            var sums = RollupSums(series: series.map { ($0.id, layouts[$0.key.metric].bucketCount) })
            for slot in incomplete { sums.markIncomplete(slot) }
            for (slot, base) in bases { sums.add(base, to: slot) }

            var recent: [MinuteRollup] = []
            var lastMinutes: [SeriesID: Minute] = [:]
            let rollupRows = try connection.prepare("SELECT minute, series_id, buckets, sum_s, sum_ns, exponential FROM rollup")
            while try rollupRows.step() {
                let minute = Minute(index: rollupRows.int64(0))
                let id = rollupRows.int64(1)
                guard let slot = sums.slot(of: id) else {
                    corrupt.record("rollup of series \(id) at minute \(minute.index): no such series")
                    continue
                }
                let sum = StoredSum(seconds: rollupRows.int64(3), nanoseconds: rollupRows.int64(4)).total
                // All or nothing: a damaged row adds none of its counts.
                guard Self.add(rollupRows, buckets: 2, exponential: 5, sum: sum, into: &sums, slot: slot) else {
                    corrupt.record(Self.damage(rollupRows, buckets: 2, of: id, at: minute, expected: sums.bucketCount(ofSlot: slot)))
                    continue
                }
                if lastMinutes[id].map({ $0 < minute }) ?? true { lastMinutes[id] = minute }
                if minute >= recentSince {
                    // The bytes just added: they read the same again.
                    let counts = try Self.counts(in: rollupRows, from: 2, exponentialColumn: 5, expected: sums.bucketCount(ofSlot: slot), what: "rollup of series \(id)")
                    recent.append(MinuteRollup(seriesID: id, minute: minute, counts: counts))
                }
            }
            sums.finish()
            var pendingTraces: [TraceID: WaitingRows] = [:]
            let traceRows = try connection.prepare("SELECT trace_high, trace_low, count(*), sum(length(span)) FROM pending_span GROUP BY trace_high, trace_low")
            while try traceRows.step() {
                pendingTraces[Self.traceID(traceRows, 0)] = WaitingRows(spans: Int(traceRows.int64(2)), bytes: Int(traceRows.int64(3)))
            }
            return RestoredState(
                series: series, totals: sums.totals(includingEmpty: true), recent: recent, lastMinutes: lastMinutes, pendingTraces: pendingTraces
            )
        }
    }

    package func commit(_ batch: CommitBatch) async throws {
        do {
            try await onWriter { [corrupt = corruptRows, room = answerRoom] in try Self.write(batch, on: $0, corrupt: corrupt, room: room) }
        } catch let error as SQLiteError where error.code & 0xFF == SQLITE_FULL {
            // SQLite has rolled the transaction back; say plainly what the operator must fix.
            throw StoreError.diskFull(path: path)
        }
    }

    /// Commits past which the log is folded into the minute rows (or past `foldBytes` of it): reads
    /// add the log's rows to what they read, so it stays short. A large batch reaches `foldBytes`
    /// alone and is folded in its own commit: a burst of them leaves no log behind.
    package static let foldCommits = 32
    package static let foldBytes = 1 << 18

    private static func write(_ batch: CommitBatch, on side: WriteSide, corrupt: CorruptRows, room: AnswerRoom) throws {
        var logged: [UInt8] = []
        var folding = false
        var kept = side.keptAnswers
        var forgotten = 0
        try side.connection.transaction {
            for record in batch.newSeries {
                side.insertSeries.bind(1, record.id)
                side.insertSeries.bind(2, record.key.metric.name)
                side.insertSeries.bind(3, SeriesText.joined(record.key.labelValues))
                try side.insertSeries.run()
            }
            for rollup in batch.rollups {
                let sum = StoredSum(rollup.counts.sumNanoseconds)
                side.upsertRollup.bind(1, rollup.minute.index)
                side.upsertRollup.bind(2, rollup.seriesID)
                side.upsertRollup.bind(3, blob: CountsBlob.encode(rollup.counts.buckets))
                side.upsertRollup.bind(4, sum.seconds)
                side.upsertRollup.bind(5, sum.nanoseconds)
                // Counts from ingest are always recorded exponentially, and go to the log; a new
                // row starts with no exponential buckets. NULL marks the minute classic-only.
                if rollup.counts.exponential.isComplete {
                    side.upsertRollup.bind(6, blob: Self.noExponentialBuckets)
                    ExponentialLog.append(series: rollup.seriesID, minute: rollup.minute, rollup.counts.exponential, to: &logged)
                }
                try side.upsertRollup.run()
            }
            if !logged.isEmpty {
                side.insertLog.bind(1, blob: logged)
                try side.insertLog.run()
            }
            folding = side.unfolded.commits + 1 >= Self.foldCommits || side.unfolded.bytes + logged.count >= Self.foldBytes
            if folding { try Self.fold(side, corrupt: corrupt) }
            if !batch.answers.isEmpty {
                // Counted before the answers go in, when not yet counted. A replaced expired
                // answer then counts twice until the next prune recounts: never under.
                var tally = try kept ?? Self.keptAnswers(side)
                for answer in batch.answers {
                    side.insertAnswer.bind(1, answer.key)
                    side.insertAnswer.bind(2, Int64(bitPattern: answer.bodyFingerprint))
                    side.insertAnswer.bind(3, Int64(answer.status))
                    side.insertAnswer.bind(4, blob: answer.body)
                    side.insertAnswer.bind(5, answer.createdAt)
                    try side.insertAnswer.run()
                    tally = (tally.answers + 1, tally.bytes + answer.body.count)
                }
                if room.isExceeded(answers: tally.answers, bytes: tally.bytes) {
                    forgotten = try Self.forgetOldestAnswers(side, tally: &tally, room: room)
                }
                kept = tally
            }
            for trace in batch.settledTraces {
                Self.bind(trace, to: side.deletePendingTrace, at: 1)
                try side.deletePendingTrace.run()
            }
            for pending in batch.pendingSpans {
                Self.bind(pending.span.traceID, to: side.insertPendingSpan, at: 1)
                side.insertPendingSpan.bind(3, Int64(bitPattern: pending.span.spanID))
                side.insertPendingSpan.bind(4, pending.receivedAt)
                side.insertPendingSpan.bind(5, blob: pending.span.encoded())
                try side.insertPendingSpan.run()
            }
        }
        // Counted once the transaction is durable: a rolled-back fold or log row never happened.
        side.keptAnswers = kept
        room.forgot(forgotten)
        if folding {
            side.unfolded = (0, 0)
        } else if !logged.isEmpty {
            side.unfolded = (side.unfolded.commits + 1, side.unfolded.bytes + logged.count)
        }
    }

    private static let noExponentialBuckets = ExponentialEncoding.encode(ExponentialBuckets())

    /// The answers kept and their bytes, counted.
    private static func keptAnswers(_ side: WriteSide) throws -> (answers: Int, bytes: Int) {
        defer { side.countAnswers.reset() }
        _ = try side.countAnswers.step()
        return (Int(side.countAnswers.int64(0)), Int(side.countAnswers.int64(1)))
    }

    /// Removes the oldest answers until what is kept is down to the room's target; returns how
    /// many went. In the caller's transaction, so the answers it just added are among those kept
    /// (they are the newest).
    private static func forgetOldestAnswers(_ side: WriteSide, tally: inout (answers: Int, bytes: Int), room: AnswerRoom) throws -> Int {
        let target = room.target
        var doomed: [String] = []
        do {
            defer { side.selectOldestAnswers.reset() }
            while tally.answers > target.answers || tally.bytes > target.bytes, try side.selectOldestAnswers.step() {
                doomed.append(side.selectOldestAnswers.text(0))
                tally.answers -= 1
                tally.bytes -= Int(side.selectOldestAnswers.int64(1))
            }
        }
        for key in doomed {
            side.deleteAnswer.bind(1, key)
            try side.deleteAnswer.run()
        }
        return doomed.count
    }

    /// Adds every row of the log to its minute row's exponential buckets and empties the log; in
    /// the caller's transaction. A minute row that is gone (its series deleted) takes nothing.
    private static func fold(_ side: WriteSide, corrupt: CorruptRows) throws {
        // Each series-minute's buckets summed densely: a commit's few buckets are added in place.
        var summed: [MinuteKey: ExponentialSpan] = [:]
        defer { side.selectLog.reset() }
        while try side.selectLog.step() {
            let read = side.selectLog.withBlob(0) { raw in
                ExponentialLog.forEach(raw) { id, minute, encoded in
                    if !summed[MinuteKey(series: id, minute: minute), default: ExponentialSpan()].add(encoded: encoded) {
                        corrupt.record("exponential_log entry of series \(id) at minute \(minute.index): damaged buckets, not folded")
                    }
                    return true
                }
            }
            // The log is emptied whatever it held: a damaged row must not stop every fold after it.
            if !read { corrupt.record("a row of exponential_log: damaged; the entries after the damage were not folded") }
        }
        for (key, span) in summed {
            side.foldLog.bind(1, blob: ExponentialEncoding.encode(span.buckets))
            side.foldLog.bind(2, key.minute.index)
            side.foldLog.bind(3, key.series)
            try side.foldLog.run()
        }
        try side.deleteLog.run()
    }

    /// A series-minute, as the log names it.
    private struct MinuteKey: Hashable {
        let series: SeriesID
        let minute: Minute
    }

    /// Adds the exponential buckets of the log's rows within `minutes` to the slots `slot` names
    /// (nil: not asked for); in the caller's read transaction, beside its read of the minute rows.
    private static func addLog(
        on connection: SQLiteConnection, minutes: ClosedRange<Minute>, into sums: inout RollupSums, corrupt: CorruptRows,
        slot: (RollupSums, SeriesID, Minute) -> Int?
    ) throws {
        let rows = try connection.prepare("SELECT deltas FROM exponential_log")
        while try rows.step() {
            let read = rows.withBlob(0) { raw in
                ExponentialLog.forEach(raw) { id, minute, encoded in
                    guard minutes.contains(minute), let target = slot(sums, id, minute) else { return true }
                    // A damaged entry adds nothing; the entries after it in the row still count.
                    if !sums.addExponential(encoded, to: target) { corrupt.record("exponential_log entry of series \(id) at minute \(minute.index): damaged buckets") }
                    return true
                }
            }
            if !read { corrupt.record("a row of exponential_log: damaged; the entries after the damage were skipped") }
        }
    }

    package func delete(_ series: Set<SeriesID>, recentSince: Minute) async throws -> [MinuteRollup] {
        guard !series.isEmpty else { return [] }
        return try await onWriter { [corrupt = corruptRows] side in
            let recent = try side.connection.transaction {
                // Folded first: the log must not hold buckets for ids a later series may take.
                try Self.fold(side, corrupt: corrupt)
                // The doomed ids go into a temporary table so that each statement below reads
                // the rollup table once, whatever the number of series.
                try side.connection.execute("DELETE FROM temp.doomed_series")
                for id in series {
                    side.insertDoomed.bind(1, id)
                    try side.insertDoomed.run()
                }
                var recent: [MinuteRollup] = []
                side.selectRecentOfDoomed.bind(1, recentSince.index)
                defer { side.selectRecentOfDoomed.reset() }
                while try side.selectRecentOfDoomed.step() {
                    let id = side.selectRecentOfDoomed.int64(1)
                    let counts = try Self.counts(in: side.selectRecentOfDoomed, from: 2, exponentialColumn: 5, what: "rollup of series \(id)")
                    recent.append(MinuteRollup(seriesID: id, minute: Minute(index: side.selectRecentOfDoomed.int64(0)), counts: counts))
                }
                try side.connection.execute(
                    "DELETE FROM rollup WHERE series_id IN (SELECT id FROM temp.doomed_series); DELETE FROM series WHERE id IN (SELECT id FROM temp.doomed_series)",
                    context: "deleting series"
                )
                return recent
            }
            side.unfolded = (0, 0)
            return recent
        }
    }

    package func answer(forKey key: String, since: Int64) async throws -> IdempotentAnswer? {
        try await onReader { connection in
            let row = try connection.prepare("SELECT body_fingerprint, status, body, created_at FROM idempotent_answer WHERE key = ? AND created_at >= ?")
            row.bind(1, key)
            row.bind(2, since)
            guard try row.step() else { return nil }
            return IdempotentAnswer(
                key: key, bodyFingerprint: UInt64(bitPattern: row.int64(0)), status: Int(row.int64(1)),
                body: row.withBlob(2) { Array($0) }, createdAt: row.int64(3)
            )
        }
    }

    package func pendingSpans(of traces: Set<TraceID>) async throws -> [PendingSpan] {
        guard !traces.isEmpty else { return [] }
        return try await onReader { [corrupt = corruptRows] connection in try connection.readTransaction {
            let rows = try connection.prepare("SELECT received_at, span FROM pending_span WHERE trace_high = ? AND trace_low = ?")
            var spans: [PendingSpan] = []
            for trace in traces {
                Self.bind(trace, to: rows, at: 1)
                while try rows.step() { if let span = Self.pendingSpan(rows, receivedAt: 0, span: 1, corrupt: corrupt) { spans.append(span) } }
                rows.reset()
            }
            return spans
        } }
    }

    package func dropPendingSpans(receivedBefore cutoff: Int64, maxTraces: Int, maxSpans: Int) async throws -> [PendingSpan] {
        try await onWriter { [corrupt = corruptRows] side in
            try side.connection.transaction {
                // Whole traces go: a trace whose first span waited too long is given up as one.
                let traces = try side.connection.prepare("SELECT DISTINCT trace_high, trace_low FROM pending_span WHERE received_at < ?1 LIMIT ?2")
                traces.bind(1, cutoff)
                traces.bind(2, Int64(maxTraces))
                var expired: [TraceID] = []
                while try traces.step() { expired.append(Self.traceID(traces, 0)) }
                let rows = try side.connection.prepare("SELECT received_at, span FROM pending_span WHERE trace_high = ? AND trace_low = ?")
                let delete = try side.connection.prepare("DELETE FROM pending_span WHERE trace_high = ? AND trace_low = ?")
                var dropped: [PendingSpan] = []
                let counted = try side.connection.prepare("SELECT count(*) FROM pending_span WHERE trace_high = ? AND trace_low = ?")
                var taken = 0
                for trace in expired {
                    Self.bind(trace, to: counted, at: 1)
                    _ = try counted.step()
                    let spans = Int(counted.int64(0))
                    counted.reset()
                    if taken > 0, taken + spans > maxSpans { break }
                    taken += spans
                    Self.bind(trace, to: rows, at: 1)
                    while try rows.step() { if let span = Self.pendingSpan(rows, receivedAt: 0, span: 1, corrupt: corrupt) { dropped.append(span) } }
                    rows.reset()
                    Self.bind(trace, to: delete, at: 1)
                    try delete.run()
                }
                return dropped
            }
        }
    }

    private static func bind(_ trace: TraceID, to statement: SQLiteStatement, at index: Int32) {
        statement.bind(index, Int64(bitPattern: trace.high))
        statement.bind(index + 1, Int64(bitPattern: trace.low))
    }

    private static func traceID(_ row: SQLiteStatement, _ column: Int32) -> TraceID {
        TraceID(high: UInt64(bitPattern: row.int64(column)), low: UInt64(bitPattern: row.int64(column + 1)))
    }

    /// A waiting span's row; nil (recorded) when it is damaged, as if it had never come.
    private static func pendingSpan(_ row: SQLiteStatement, receivedAt: Int32, span: Int32, corrupt: CorruptRows) -> PendingSpan? {
        guard let decoded = row.withBlob(span, { OTLPSpan(encoded: $0.assumingMemoryBound(to: UInt8.self)) }) else {
            corrupt.record("a row of pending_span received at \(row.int64(receivedAt)): damaged")
            return nil
        }
        return PendingSpan(decoded, receivedAt: row.int64(receivedAt))
    }

    /// What is wrong with a rollup row that did not add, for the operator.
    private static func damage(_ row: SQLiteStatement, buckets column: Int32, of series: SeriesID, at minute: Minute, expected: Int) -> String {
        RowDamage.rollup(of: series, at: minute.index, bucketBytes: row.withBlob(column) { $0.count }, expected: expected)
    }

    package func prune(before cutoff: Minute, answersBefore: Int64) async throws -> PruneReport {
        try await onWriter { [corrupt = corruptRows] side in
            let report = try side.connection.transaction {
                // The log first, so that the minutes pruned carry all their buckets into the base.
                try Self.fold(side, corrupt: corrupt)
                var folded: [SeriesID: HistogramCounts] = [:]
                var rows = 0
                side.selectExpired.bind(1, cutoff.index)
                defer { side.selectExpired.reset() }
                while try side.selectExpired.step() {
                    let id = side.selectExpired.int64(0)
                    let counts = try Self.counts(in: side.selectExpired, from: 1, exponentialColumn: 4, what: "rollup of series \(id)")
                    if folded[id] == nil { folded[id] = counts } else { folded[id]!.add(counts) }
                    rows += 1
                }
                for (id, counts) in folded {
                    let sum = StoredSum(counts.sumNanoseconds)
                    side.foldIntoBase.bind(1, blob: CountsBlob.encode(counts.buckets))
                    side.foldIntoBase.bind(2, sum.seconds)
                    side.foldIntoBase.bind(3, sum.nanoseconds)
                    side.foldIntoBase.bind(4, id)
                    if counts.exponential.isComplete {
                        side.foldIntoBase.bind(5, blob: ExponentialEncoding.encode(counts.exponential))
                    }
                    try side.foldIntoBase.run()
                }
                side.deleteExpired.bind(1, cutoff.index)
                try side.deleteExpired.run()
                side.deleteExpiredAnswers.bind(1, answersBefore)
                try side.deleteExpiredAnswers.run()
                return PruneReport(rollupsFolded: rows, answersForgotten: Int(sqlite3_changes(side.connection.handle)))
            }
            side.unfolded = (0, 0)
            // Counted again at the next answer kept.
            side.keptAnswers = nil
            return report
        }
    }

    /// Most series whose rows are found one by one rather than by reading the whole range.
    package static let seekedSeries = 64

    /// The rows of `series` (all of one family) in `minutes`, as (minute, series_id, buckets,
    /// sum_s, sum_ns, exponential). A few series (a label filter, the status page's charted pairs)
    /// are found by their keys, minute by minute: 64 series over a day are 92,000 seeks where
    /// reading the range would be a row per series per minute. More are read from the range's
    /// rows, and the others' blobs are never read.
    private static func rows(of series: some Collection<SeriesID>, minutes: ClosedRange<Minute>, on connection: SQLiteConnection) throws -> SQLiteStatement {
        let columns = "r.minute, r.series_id, r.buckets, r.sum_s, r.sum_ns, r.exponential"
        let rows: SQLiteStatement
        if series.count <= seekedSeries {
            // CROSS JOIN keeps this order: each minute, each series, one seek into the primary key.
            rows = try connection.prepare(
                """
                WITH RECURSIVE minutes(m) AS (SELECT ?1 UNION ALL SELECT m + 1 FROM minutes WHERE m < ?2)
                SELECT \(columns) FROM minutes CROSS JOIN json_each(?3) AS wanted CROSS JOIN rollup r ON r.minute = minutes.m AND r.series_id = wanted.value
                """
            )
            rows.bind(3, "[" + series.map(String.init).joined(separator: ",") + "]")
        } else {
            // Rows of other series are passed over by the caller's slot lookup before any blob is
            // read: an array index per row, a quarter faster than SQLite's own IN-list probe.
            rows = try connection.prepare("SELECT \(columns) FROM rollup r WHERE r.minute BETWEEN ?1 AND ?2")
        }
        rows.bind(1, minutes.lowerBound.index)
        rows.bind(2, minutes.upperBound.index)
        return rows
    }

    package func windowTotals(
        of metric: HistogramMetric, series: Set<SeriesID>, minutes: ClosedRange<Minute>
    ) async throws -> [SeriesID: HistogramCounts] {
        try await onReader { [layouts, corrupt = corruptRows] connection in try connection.readTransaction {
            let rows = try Self.rows(of: series, minutes: minutes, on: connection)
            // Two hours of a thousand series are 120,000 rows: each is added in place into one
            // flat array, with no array made per row.
            var window = RollupSums(series: series.map { ($0, layouts[metric].bucketCount) })
            while try rows.step() {
                let id = rows.int64(1)
                guard let slot = window.slot(of: id) else { continue }
                let sum = StoredSum(seconds: rows.int64(3), nanoseconds: rows.int64(4)).total
                guard Self.add(rows, buckets: 2, exponential: 5, sum: sum, into: &window, slot: slot) else {
                    corrupt.record(Self.damage(rows, buckets: 2, of: id, at: Minute(index: rows.int64(0)), expected: window.bucketCount(ofSlot: slot)))
                    continue
                }
            }
            try Self.addLog(on: connection, minutes: minutes, into: &window, corrupt: corrupt) { window, id, _ in window.slot(of: id) }
            window.finish()
            return window.totals(includingEmpty: false)
        } }
    }

    package func groupedTotals(
        of metric: HistogramMetric, groups: [SeriesID: Int], groupCount: Int, minutes: ClosedRange<Minute>, stepMinutes: Int64
    ) async throws -> [[HistogramCounts]] {
        precondition(stepMinutes >= 1, "a step is at least a minute")
        let steps = Int((minutes.lowerBound.distance(to: minutes.upperBound) + stepMinutes) / stepMinutes)
        let width = layouts[metric].bucketCount
        return try await onReader { [corrupt = corruptRows] connection in try connection.readTransaction {
            let rows = try Self.rows(of: groups.keys, minutes: minutes, on: connection)
            // One slot per group and step, summed in place like a trend window.
            var sums = RollupSums(slots: groupCount * steps, bucketCount: width)
            while try rows.step() {
                guard let group = groups[rows.int64(1)] else { continue }
                let step = Int((rows.int64(0) - minutes.lowerBound.index) / stepMinutes)
                let sum = StoredSum(seconds: rows.int64(3), nanoseconds: rows.int64(4)).total
                guard Self.add(rows, buckets: 2, exponential: 5, sum: sum, into: &sums, slot: group * steps + step) else {
                    corrupt.record(Self.damage(rows, buckets: 2, of: rows.int64(1), at: Minute(index: rows.int64(0)), expected: width))
                    continue
                }
            }
            try Self.addLog(on: connection, minutes: minutes, into: &sums, corrupt: corrupt) { _, id, minute in
                groups[id].map { $0 * steps + Int((minute.index - minutes.lowerBound.index) / stepMinutes) }
            }
            sums.finish()
            return (0..<groupCount).map { group in (0..<steps).map { step in sums.counts(ofSlot: group * steps + step) } }
        } }
    }

    package func sizeInBytes() -> Int64 {
        [path, path + "-wal", path + "-shm"].reduce(0) { total, file in
            var info = stat()
            return stat(file, &info) == 0 ? total + Int64(info.st_size) : total
        }
    }

    // MARK: Encoding

    private static func buckets(_ raw: UnsafeRawBufferPointer, expected: Int?, what: String) throws -> [UInt64] {
        guard let buckets = CountsBlob.decode(raw), expected == nil || buckets.count == expected else {
            throw StoreError.damagedRow("\(what) has \(raw.count) bytes of bucket counts, expected \((expected ?? 0) * 8)")
        }
        return buckets
    }

    /// Counts stored as three columns from `column` on (the buckets blob, whole seconds,
    /// nanoseconds) and the exponential blob in `exponentialColumn` (NULL: never recorded).
    private static func counts(in row: SQLiteStatement, from column: Int32, exponentialColumn: Int32?, expected: Int? = nil, what: String) throws -> HistogramCounts {
        HistogramCounts(
            buckets: try row.withBlob(column) { try buckets($0, expected: expected, what: what) },
            exponential: try exponentialColumn.flatMap { try exponential(in: row, column: $0, what: what) } ?? .unrecorded,
            sumNanoseconds: StoredSum(seconds: row.int64(column + 1), nanoseconds: row.int64(column + 2)).total
        )
    }

    /// The exponential buckets in `column`; nil for NULL.
    private static func exponential(in row: SQLiteStatement, column: Int32, what: String) throws -> ExponentialBuckets? {
        guard !row.isNull(column) else { return nil }
        guard let buckets = row.withBlob(column, { ExponentialEncoding.decode($0) }) else {
            throw StoreError.damagedRow("\(what) has damaged exponential buckets")
        }
        return buckets
    }

    /// Adds a row's classic and exponential blobs and its sum into `slot` of `sums`.
    private static func add(_ row: SQLiteStatement, buckets: Int32, exponential: Int32, sum: Int128, into sums: inout RollupSums, slot: Int) -> Bool {
        row.withBlob(buckets) { classic in
            row.withBlob(exponential) { encoded in
                // No bytes is NULL (an encoding is never empty): a minute never recorded exponentially.
                sums.add(classic, exponential: encoded.isEmpty ? nil : encoded, sum: sum, to: slot)
            }
        }
    }
}

/// A reader connection, used by one thread at a time.
private final class ReadSide: Sendable {
    let connection: Mutex<SQLiteConnection>

    init(_ connection: SQLiteConnection) {
        self.connection = Mutex(connection)
    }
}

/// The writer's connection and its prepared statements.
final class WriteSide {
    let connection: SQLiteConnection
    let insertSeries: SQLiteStatement
    let upsertRollup: SQLiteStatement
    let selectExpired: SQLiteStatement
    let foldIntoBase: SQLiteStatement
    let deleteExpired: SQLiteStatement
    let insertAnswer: SQLiteStatement
    let insertDoomed: SQLiteStatement
    let selectRecentOfDoomed: SQLiteStatement
    let deleteExpiredAnswers: SQLiteStatement
    let insertLog: SQLiteStatement
    let selectLog: SQLiteStatement
    let foldLog: SQLiteStatement
    let deleteLog: SQLiteStatement
    let insertPendingSpan: SQLiteStatement
    let deletePendingTrace: SQLiteStatement
    let countAnswers: SQLiteStatement
    let selectOldestAnswers: SQLiteStatement
    let deleteAnswer: SQLiteStatement
    /// Commits and bytes in the log since it was last folded.
    var unfolded: (commits: Int, bytes: Int) = (0, 0)
    /// Answers kept and their bytes, once counted: nil until then, and after a prune.
    var keptAnswers: (answers: Int, bytes: Int)?

    init(connection: SQLiteConnection) throws(SQLiteError) {
        self.connection = connection
        // A series created now has every observation recorded exponentially, from the first.
        insertSeries = try connection.prepare("INSERT INTO series (id, metric, label_values, exponential_complete) VALUES (?, ?, ?, 1)")
        upsertRollup = try connection.prepare(
            """
            INSERT INTO rollup (minute, series_id, buckets, sum_s, sum_ns, exponential) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (minute, series_id) DO UPDATE SET
                buckets = perfgate_add_counts(buckets, excluded.buckets),
                exponential = CASE WHEN excluded.exponential IS NULL THEN NULL ELSE exponential END,
                sum_s = sum_s + excluded.sum_s + (sum_ns + excluded.sum_ns) / 1000000000,
                sum_ns = (sum_ns + excluded.sum_ns) % 1000000000
            """
        )
        selectExpired = try connection.prepare("SELECT series_id, buckets, sum_s, sum_ns, exponential FROM rollup WHERE minute < ?")
        foldIntoBase = try connection.prepare(
            """
            UPDATE series SET
                base_buckets = CASE WHEN base_buckets IS NULL THEN ?1 ELSE perfgate_add_counts(base_buckets, ?1) END,
                base_sum_s = base_sum_s + ?2 + (base_sum_ns + ?3) / 1000000000,
                base_sum_ns = (base_sum_ns + ?3) % 1000000000,
                base_exponential = CASE
                    WHEN exponential_complete = 0 OR ?5 IS NULL THEN NULL
                    WHEN base_exponential IS NULL THEN ?5
                    ELSE perfgate_add_exponential(base_exponential, ?5) END,
                exponential_complete = exponential_complete AND ?5 IS NOT NULL
            WHERE id = ?4
            """
        )
        deleteExpired = try connection.prepare("DELETE FROM rollup WHERE minute < ?")
        // REPLACE: an expired answer not yet pruned gives way to the new one under its key.
        insertAnswer = try connection.prepare(
            "INSERT OR REPLACE INTO idempotent_answer (key, body_fingerprint, status, body, created_at) VALUES (?, ?, ?, ?, ?)"
        )
        try connection.execute("CREATE TEMP TABLE IF NOT EXISTS doomed_series (id INTEGER PRIMARY KEY)")
        insertDoomed = try connection.prepare("INSERT INTO temp.doomed_series (id) VALUES (?)")
        selectRecentOfDoomed = try connection.prepare(
            "SELECT minute, series_id, buckets, sum_s, sum_ns, exponential FROM rollup WHERE minute >= ? AND series_id IN (SELECT id FROM temp.doomed_series)"
        )
        deleteExpiredAnswers = try connection.prepare("DELETE FROM idempotent_answer WHERE created_at < ?")
        countAnswers = try connection.prepare("SELECT count(*), coalesce(sum(length(body)), 0) FROM idempotent_answer")
        selectOldestAnswers = try connection.prepare("SELECT key, length(body) FROM idempotent_answer ORDER BY created_at, key")
        deleteAnswer = try connection.prepare("DELETE FROM idempotent_answer WHERE key = ?")
        insertLog = try connection.prepare("INSERT INTO exponential_log (deltas) VALUES (?)")
        selectLog = try connection.prepare("SELECT deltas FROM exponential_log ORDER BY id")
        // perfgate_add_exponential keeps a classic-only minute (NULL) classic-only.
        foldLog = try connection.prepare("UPDATE rollup SET exponential = perfgate_add_exponential(exponential, ?1) WHERE minute = ?2 AND series_id = ?3")
        deleteLog = try connection.prepare("DELETE FROM exponential_log")
        // IGNORE: a span sent again (an exporter's retry) waits once.
        insertPendingSpan = try connection.prepare(
            "INSERT OR IGNORE INTO pending_span (trace_high, trace_low, span_id, received_at, span) VALUES (?, ?, ?, ?, ?)"
        )
        deletePendingTrace = try connection.prepare("DELETE FROM pending_span WHERE trace_high = ? AND trace_low = ?")
    }
}
