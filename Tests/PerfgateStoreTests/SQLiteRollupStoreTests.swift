import CSQLite
import Foundation
import PerfgateCore
import PerfgateStore
import PerfgateTestSupport
import Testing

/// A fresh folder under the system temporary directory, removed when the test ends.
final class TemporaryFolder {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "perfgate-store-" + UUID().uuidString
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    var database: String { path + "/nested/perfgate.sqlite" }
}

@Suite struct SQLiteRollupStoreTests {
    let folder = TemporaryFolder()
    let layouts = BucketLayouts.seed
    let minute = Minute(index: 29_932_080)
    let ttfb = SeriesKey(.backendTTFB, ["openrouter", "gpt-4o", "/v1/chat/completions"])
    let frontend = SeriesKey(.frontendProcessing, ["/v1/chat/completions"])

    private func counts(_ key: SeriesKey, _ values: [Int64]) -> HistogramCounts {
        observed(key, values, layouts: layouts)
    }

    private func open() throws -> SQLiteRollupStore {
        try SQLiteRollupStore(path: folder.database, layouts: layouts)
    }

    private func appliedMigrations() throws -> [String] {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(folder.database, &handle, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { return [] }
        defer { sqlite3_close_v2(handle) }
        var statement: OpaquePointer?
        sqlite3_prepare_v2(handle, "SELECT name FROM schema_migrations ORDER BY version", -1, &statement, nil)
        defer { sqlite3_finalize(statement) }
        var names: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW { names.append(String(cString: sqlite3_column_text(statement, 0))) }
        return names
    }

    @Test func createsItsFolderAndAppliesMigrationsOnce() async throws {
        _ = try open()
        #expect(try appliedMigrations() == ["0001_init.sql", "0002_idempotency.sql", "0003_exponential_buckets.sql", "0004_exponential_log.sql", "0005_pending_spans.sql", "0006_quarantine.sql"])
        _ = try open()
        #expect(try appliedMigrations() == ["0001_init.sql", "0002_idempotency.sql", "0003_exponential_buckets.sql", "0004_exponential_log.sql", "0005_pending_spans.sql", "0006_quarantine.sql"])
    }

    @Test func reopeningRestoresExactCounts() async throws {
        let slow: [Int64] = [100 * 1_000_000, 1_697_000_000, 20_000_000_000, 1]
        do {
            let store = try open()
            try await store.commit(
                CommitBatch(
                    newSeries: [SeriesRecord(id: 1, key: ttfb), SeriesRecord(id: 2, key: frontend)],
                    rollups: [
                        MinuteRollup(seriesID: 1, minute: minute, counts: counts(ttfb, slow)),
                        MinuteRollup(seriesID: 2, minute: minute, counts: counts(frontend, [2_400_000])),
                    ]
                )
            )
            // A second commit to the same minute adds, it does not replace.
            try await store.commit(
                CommitBatch(newSeries: [], rollups: [MinuteRollup(seriesID: 1, minute: minute, counts: counts(ttfb, [500_000_000]))])
            )
        }
        let restored = try await open().restore(recentSince: minute)
        #expect(restored.series == [SeriesRecord(id: 1, key: ttfb), SeriesRecord(id: 2, key: frontend)])
        #expect(restored.totals[1] == counts(ttfb, slow + [500_000_000]))
        #expect(restored.totals[2] == counts(frontend, [2_400_000]))
        #expect(restored.recent.count == 2)
        #expect(try await open().restore(recentSince: minute.advanced(by: 1)).recent.isEmpty)
    }

    @Test func sumsStayExactFarBeyondSixtyFourBitNanoseconds() async throws {
        let store = try open()
        let huge = HistogramCounts(buckets: [0, 0, 0, 0, 0, 0, 0, 0, 0, 3], exponential: .unrecorded, sumNanoseconds: Int128(Int64.max) + 5)
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: ttfb)], rollups: [MinuteRollup(seriesID: 1, minute: minute, counts: huge)]))
        try await store.commit(CommitBatch(newSeries: [], rollups: [MinuteRollup(seriesID: 1, minute: minute, counts: huge)]))
        #expect(try await store.restore(recentSince: minute).totals[1]?.sumNanoseconds == 2 * (Int128(Int64.max) + 5))
    }

    @Test func pruningFoldsOldMinutesIntoTheBaseAndKeepsTotalsExact() async throws {
        let store = try open()
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: ttfb)], rollups: []))
        var expected = HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount)
        for offset in 0..<10 {
            let minuteCounts = counts(ttfb, [Int64(offset) * 300_000_001, 1_000_000_000 + Int64(offset)])
            expected.add(minuteCounts)
            try await store.commit(CommitBatch(newSeries: [], rollups: [MinuteRollup(seriesID: 1, minute: minute.advanced(by: Int64(offset)), counts: minuteCounts)]))
        }
        #expect(try await store.prune(before: minute.advanced(by: 4), answersBefore: 0) == PruneReport(rollupsFolded: 4))
        #expect(try await store.prune(before: minute.advanced(by: 4), answersBefore: 0) == PruneReport(rollupsFolded: 0))
        #expect(try await store.prune(before: minute.advanced(by: 8), answersBefore: 0) == PruneReport(rollupsFolded: 4))
        #expect(try await store.restore(recentSince: minute).totals[1] == expected)
        #expect(try await open().restore(recentSince: minute).totals[1] == expected)
        #expect(try await store.windowTotals(of: .backendTTFB, series: [1], minutes: minute...minute.advanced(by: 7)).isEmpty)
        #expect(try await store.windowTotals(of: .backendTTFB, series: [1], minutes: minute.advanced(by: 8)...minute.advanced(by: 9))[1]?.count == 4)
    }

    @Test func windowTotalsAddTheMinutesInRange() async throws {
        let store = try open()
        try await store.commit(
            CommitBatch(
                newSeries: [SeriesRecord(id: 1, key: ttfb), SeriesRecord(id: 2, key: frontend)],
                rollups: [
                    MinuteRollup(seriesID: 1, minute: minute, counts: counts(ttfb, [1])),
                    MinuteRollup(seriesID: 1, minute: minute.advanced(by: 1), counts: counts(ttfb, [2, 3])),
                    MinuteRollup(seriesID: 2, minute: minute.advanced(by: 2), counts: counts(frontend, [4])),
                ]
            )
        )
        let totals = try await store.windowTotals(of: .backendTTFB, series: [1], minutes: minute...minute.advanced(by: 1))
        #expect(totals == [1: counts(ttfb, [1, 2, 3])])
        #expect(try await store.windowTotals(of: .frontendProcessing, series: [2], minutes: minute...minute.advanced(by: 2)) == [2: counts(frontend, [4])])
    }

    /// A window of many series is read from its family's rows, of a few by seeking each series'
    /// minutes: both give what was committed, summed independently, and nothing of the other
    /// family or of minutes out of range.
    @Test func windowsOfFewAndOfManySeriesReadTheSameRows() async throws {
        let store = try open()
        var generator = SplitMix(seed: 4242)
        let ttfbKeys = (0..<150).map { SeriesKey(.backendTTFB, ["p\($0 % 9)", "m\($0)", "/v1/chat/completions"]) }
        let otherKeys = (0..<40).map { SeriesKey(.streamingDuration, ["p\($0 % 9)", "m\($0)", "/v1/chat/completions"]) }
        let records = (ttfbKeys + otherKeys).enumerated().map { SeriesRecord(id: SeriesID($0.offset + 1), key: $0.element) }
        var expected: [SeriesID: HistogramCounts] = [:]
        var rollups: [MinuteRollup] = []
        for offset in 0..<30 {
            for record in records where generator.next(below: 3) != 0 {
                let values = (0..<(1 + generator.next(below: 6))).map { _ in Int64(generator.next(below: 9_000_000_000)) + 1 }
                let added = counts(record.key, values)
                rollups.append(MinuteRollup(seriesID: record.id, minute: minute.advanced(by: Int64(offset)), counts: added))
                if (5...24).contains(offset) && record.key.metric == .backendTTFB {
                    if expected[record.id] == nil { expected[record.id] = added } else { expected[record.id]!.add(added) }
                }
            }
        }
        try await store.commit(CommitBatch(newSeries: records, rollups: rollups))
        let range = minute.advanced(by: 5)...minute.advanced(by: 24)
        let ids = records.filter { $0.key.metric == .backendTTFB }.map(\.id)
        #expect(ids.count > SQLiteRollupStore.seekedSeries)
        let whole = try await store.windowTotals(of: .backendTTFB, series: Set(ids), minutes: range)
        var pieces: [SeriesID: HistogramCounts] = [:]
        for start in stride(from: 0, to: ids.count, by: 50) {
            let part = Set(ids[start..<min(start + 50, ids.count)])
            pieces.merge(try await store.windowTotals(of: .backendTTFB, series: part, minutes: range)) { $1 }
        }
        #expect(whole == expected)
        #expect(pieces == expected)
        // Grouped the same way: one group of all, by scan; one of a few, by seeks.
        let all = try await store.groupedTotals(of: .backendTTFB, groups: Dictionary(uniqueKeysWithValues: ids.map { ($0, 0) }), groupCount: 1, minutes: range, stepMinutes: 20)
        let few = try await store.groupedTotals(of: .backendTTFB, groups: [ids[3]: 0], groupCount: 1, minutes: range, stepMinutes: 20)
        var summed = HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount)
        for counts in expected.values { summed.add(counts) }
        #expect(all == [[summed]])
        #expect(few == [[expected[ids[3]] ?? HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount)]])
    }

    @Test func windowTotalsSkipAndCountCountsOfAnotherLayout() async throws {
        let store = try open()
        try await store.commit(
            CommitBatch(newSeries: [SeriesRecord(id: 1, key: frontend)], rollups: [MinuteRollup(seriesID: 1, minute: minute, counts: counts(frontend, [1]))])
        )
        // A frontend row (8 bounds) holding ten counts, as a TTFB row would: damage, not data,
        // skipped, counted and described, never summed into another layout.
        try execute("UPDATE rollup SET buckets = zeroblob(80) WHERE series_id = 1")
        #expect(try await store.windowTotals(of: .frontendProcessing, series: [1], minutes: minute...minute) == [:])
        #expect(store.corruptRows.count == 1)
        #expect(store.corruptRows.examples.first?.contains("80 bytes of bucket counts, expected 72") == true)
    }

    private func execute(_ sql: String) throws {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(folder.database, &handle, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else { throw CancellationError() }
        defer { sqlite3_close_v2(handle) }
        #expect(sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK)
    }

    @Test func aFailedCommitAppliesNothing() async throws {
        let store = try open()
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: ttfb)], rollups: []))
        // The second series reuses id 1: the insert fails after the rollup of series 1 was written.
        await #expect(throws: SQLiteError.self) {
            try await store.commit(
                CommitBatch(
                    newSeries: [SeriesRecord(id: 1, key: frontend)],
                    rollups: [MinuteRollup(seriesID: 1, minute: minute, counts: counts(ttfb, [1]))]
                )
            )
        }
        let restored = try await store.restore(recentSince: minute)
        #expect(restored.series.count == 1)
        #expect(restored.totals[1]?.count == 0)
    }

    @Test func keepsIdempotentAnswersWithTheirCountsUntilTheyExpire() async throws {
        let answer = IdempotentAnswer(key: "batch-7", bodyFingerprint: .max, status: 200, body: Array(#"{"accepted":1}"#.utf8), createdAt: 1000)
        do {
            let store = try open()
            try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: ttfb)], rollups: [], answers: [answer]))
            // The answer of a failed commit is not kept, like its counts.
            await #expect(throws: SQLiteError.self) {
                try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: frontend)], rollups: [], answers: [IdempotentAnswer(key: "lost", bodyFingerprint: 1, status: 200, body: [], createdAt: 1000)]))
            }
            #expect(try await store.answer(forKey: "lost", since: 0) == nil)
        }
        let store = try open()
        #expect(try await store.answer(forKey: "batch-7", since: 1000) == answer)
        #expect(try await store.answer(forKey: "batch-7", since: 1001) == nil)
        #expect(try await store.prune(before: minute, answersBefore: 1000).answersForgotten == 0)
        #expect(try await store.prune(before: minute, answersBefore: 1001).answersForgotten == 1)
        #expect(try await store.answer(forKey: "batch-7", since: 0) == nil)
    }

    /// Past the room, a commit lets the oldest answers go (never the ones it keeps), down to nine
    /// tenths of the limit, and counts them; by number and by bytes, across a reopening.
    @Test func keptAnswersStayWithinTheirRoomOldestFirst() async throws {
        var generator = SplitMix(seed: 91)
        func answers(_ range: Range<Int>, bytes: Int) -> [IdempotentAnswer] {
            range.map { IdempotentAnswer(key: "k\($0)", bodyFingerprint: UInt64($0), status: 200, body: Array(repeating: 0x20, count: bytes), createdAt: 1_000 + Int64($0)) }
        }
        let byNumber = AnswerRoom(maxAnswers: 50, maxBytes: 1 << 30)
        do {
            let store = try SQLiteRollupStore(path: folder.database, layouts: layouts, answerRoom: byNumber)
            var next = 0
            while next < 400 {
                let count = 1 + generator.next(below: 13)
                try await store.commit(CommitBatch(newSeries: [], rollups: [], answers: answers(next..<(next + count), bytes: 10)))
                next += count
                let kept = try keptAnswers()
                #expect(kept.count <= 50 && kept.count >= min(next, 45), "after \(next): \(kept.count)")
                #expect(kept.newest == "k\(next - 1)")
            }
            #expect(byNumber.forgottenCount == next - (try keptAnswers()).count)
            #expect(try await store.answer(forKey: "k0", since: 0) == nil)
        }
        let byBytes = AnswerRoom(maxAnswers: 1_000_000, maxBytes: 10_000)
        let store = try SQLiteRollupStore(path: folder.database, layouts: layouts, answerRoom: byBytes)
        try await store.commit(CommitBatch(newSeries: [], rollups: [], answers: answers(1_000..<1_100, bytes: 700)))
        let kept = try keptAnswers()
        #expect(kept.bytes <= 10_000 && kept.bytes > 9_000 - 700, "\(kept.bytes) bytes")
        #expect(kept.newest == "k1099")
        #expect(try await store.answer(forKey: "k1099", since: 0) != nil)
    }

    private func keptAnswers() throws -> (count: Int, bytes: Int, newest: String) {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(folder.database, &handle, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { return (0, 0, "") }
        defer { sqlite3_close_v2(handle) }
        var statement: OpaquePointer?
        sqlite3_prepare_v2(
            handle, "SELECT count(*), coalesce(sum(length(body)), 0), (SELECT key FROM idempotent_answer ORDER BY created_at DESC LIMIT 1) FROM idempotent_answer",
            -1, &statement, nil
        )
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW else { return (0, 0, "") }
        return (Int(sqlite3_column_int64(statement, 0)), Int(sqlite3_column_int64(statement, 1)), sqlite3_column_text(statement, 2).map { String(cString: $0) } ?? "")
    }

    @Test func refusesAChangedBucketLayout() async throws {
        _ = try open()
        let changed = BucketLayouts(overrides: [.backendTTFB: try BucketLayout(seconds: ["1", "2"])])
        #expect {
            _ = try SQLiteRollupStore(path: folder.database, layouts: changed)
        } throws: { error in
            "\(error)".contains("the buckets of backend_ttfb_seconds changed from 0.1,0.5,1,1.5,2,2.5,3,5,10 to 1,2")
        }
    }

    @Test func refusesADatabaseFromANewerSchema() async throws {
        _ = try open()
        let shipped = try appliedMigrations().count
        var handle: OpaquePointer?
        sqlite3_open_v2(folder.database, &handle, SQLITE_OPEN_READWRITE, nil)
        sqlite3_exec(handle, "INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future.sql')", nil, nil, nil)
        sqlite3_close_v2(handle)
        #expect {
            _ = try open()
        } throws: { error in
            "\(error)".contains("has schema version 99, newer than this perfgate supports (\(shipped))")
        }
    }

    @Test func refusesAFileThatIsNotADatabase() async throws {
        try FileManager.default.createDirectory(atPath: folder.path + "/nested", withIntermediateDirectories: true)
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: folder.database))
        #expect {
            _ = try open()
        } throws: { error in
            "\(error)".contains("cannot be read as a perfgate database")
        }
    }

    /// Runs SQL on the store's file from outside, as a store written by an earlier perfgate would look.
    private func rewrite(_ sql: String) {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(folder.database, &handle, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else { return }
        defer { sqlite3_close_v2(handle) }
        #expect(sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK)
    }

    @Test func exponentialBucketsStayExactThroughUpsertsRestartsAndPruning() async throws {
        let store = try open()
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: ttfb)], rollups: []))
        var random = SystemRandomNumberGenerator()
        var expected = HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount)
        var lastMinutes = HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount)
        // Three commits into each of six minutes: every minute's row is upserted twice.
        for offset in 0..<6 {
            for _ in 0..<3 {
                let values = (0..<Int.random(in: 1...60, using: &random)).map { _ in Int64.random(in: 0...12_000_000_000, using: &random) }
                let minuteCounts = counts(ttfb, values)
                expected.add(minuteCounts)
                if offset >= 4 { lastMinutes.add(minuteCounts) }
                try await store.commit(CommitBatch(newSeries: [], rollups: [MinuteRollup(seriesID: 1, minute: minute.advanced(by: Int64(offset)), counts: minuteCounts)]))
            }
        }
        #expect(expected.hasWholeExponential)
        #expect(try await store.windowTotals(of: .backendTTFB, series: [1], minutes: minute...minute.advanced(by: 5))[1] == expected)
        #expect(try await open().restore(recentSince: minute).totals[1] == expected)
        #expect(try await store.prune(before: minute.advanced(by: 4), answersBefore: 0).rollupsFolded == 4)
        let reopened = try open()
        #expect(try await reopened.restore(recentSince: minute).totals[1] == expected)
        #expect(try await reopened.windowTotals(of: .backendTTFB, series: [1], minutes: minute...minute.advanced(by: 5))[1] == lastMinutes)
    }

    /// Rows of the exponential log counted in the store's table, from outside.
    private func logRows() -> Int {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(folder.database, &handle, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { return -1 }
        defer { sqlite3_close_v2(handle) }
        var statement: OpaquePointer?
        sqlite3_prepare_v2(handle, "SELECT count(*) FROM exponential_log", -1, &statement, nil)
        defer { sqlite3_finalize(statement) }
        return sqlite3_step(statement) == SQLITE_ROW ? Int(sqlite3_column_int64(statement, 0)) : -1
    }

    /// Commits append their exponential buckets to a log that is folded into the minute rows every
    /// few dozen commits: whenever a read comes, before or after a fold, in a store reopened with
    /// an unfolded log (as after a crash), and around deleting a series, the answers are exact.
    @Test func theExponentialLogIsCountedBeforeAndAfterItIsFolded() async throws {
        let store = try open()
        let other = SeriesKey(.backendTTFB, ["openai", "gpt-4o", "/v1/chat/completions"])
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: ttfb), SeriesRecord(id: 2, key: other)], rollups: []))
        // A seeded linear congruential generator, so a failing case reproduces.
        var state: UInt64 = 11
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 17
        }
        let bucketCount = layouts[.backendTTFB].bucketCount
        var perMinute: [[HistogramCounts]] = Array(repeating: Array(repeating: HistogramCounts(bucketCount: bucketCount), count: 3), count: 3)
        let window = minute...minute.advanced(by: 2)
        for commit in 1...100 {
            var rollups: [MinuteRollup] = []
            for id in [1, 2] where next() % 3 != 0 {
                let offset = Int(next() % 3)
                let values = (0..<Int(1 + next() % 40)).map { _ in Int64(next() % 9_000_000_000) }
                let added = counts(ttfb, values)
                perMinute[id][offset].add(added)
                rollups.append(MinuteRollup(seriesID: Int64(id), minute: minute.advanced(by: Int64(offset)), counts: added))
            }
            try await store.commit(CommitBatch(newSeries: [], rollups: rollups))
            guard commit % 7 == 0 else { continue }
            let totals = try await store.windowTotals(of: .backendTTFB, series: [1, 2], minutes: window)
            for id in [1, 2] {
                let expected = perMinute[id].reduce(HistogramCounts(bucketCount: bucketCount)) { var sum = $0; sum.add($1); return sum }
                #expect(totals[Int64(id)] ?? HistogramCounts(bucketCount: bucketCount) == expected, "series \(id) after commit \(commit)")
            }
            let steps = try await store.groupedTotals(of: .backendTTFB, groups: [1: 0, 2: 1], groupCount: 2, minutes: window, stepMinutes: 1)
            #expect(steps[0] == Array(perMinute[1]) && steps[1] == Array(perMinute[2]), "steps after commit \(commit)")
        }
        #expect(logRows() > 0 && logRows() < SQLiteRollupStore.foldCommits)
        // Reopened with the log unfolded (no checkpoint, as after a crash): folded at once, nothing lost.
        let reopened = try open()
        #expect(logRows() == 0)
        let restored = try await reopened.restore(recentSince: minute)
        for id in [1, 2] {
            let expected = perMinute[id].reduce(HistogramCounts(bucketCount: bucketCount)) { var sum = $0; sum.add($1); return sum }
            #expect(restored.totals[Int64(id)] == expected)
        }
        // A series deleted while the log holds its buckets leaves none behind for the next to take its id.
        try await reopened.commit(CommitBatch(newSeries: [], rollups: [MinuteRollup(seriesID: 2, minute: minute, counts: counts(ttfb, [5_000_000_000]))]))
        _ = try await reopened.delete([2], recentSince: minute)
        try await reopened.commit(CommitBatch(newSeries: [SeriesRecord(id: 2, key: other)], rollups: [MinuteRollup(seriesID: 2, minute: minute, counts: counts(ttfb, [7_000_000]))]))
        #expect(try await reopened.windowTotals(of: .backendTTFB, series: [2], minutes: window)[2] == counts(ttfb, [7_000_000]))
        try await reopened.checkpoint()
        #expect(logRows() == 0)
    }

    @Test func aStoreFromBeforeExponentialBucketsAnswersClassicOnlyWhereItMust() async throws {
        let store = try open()
        let old = counts(ttfb, [1_500_000_000, 2_700_000_000])
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 1, key: ttfb)], rollups: [MinuteRollup(seriesID: 1, minute: minute, counts: old)]))
        // As an earlier perfgate left it: no exponential buckets, the series not recorded from its start.
        rewrite("UPDATE rollup SET exponential = NULL; UPDATE series SET exponential_complete = 0")
        let upgraded = try open()
        let restored = try await upgraded.restore(recentSince: minute)
        #expect(restored.totals[1]?.buckets == old.buckets)
        #expect(restored.totals[1]?.hasWholeExponential == false)
        // New counts in the old minute leave it classic-only; a new minute is whole again.
        let new = counts(ttfb, [1_600_000_000])
        try await upgraded.commit(CommitBatch(newSeries: [SeriesRecord(id: 2, key: frontend)], rollups: [
            MinuteRollup(seriesID: 1, minute: minute, counts: new), MinuteRollup(seriesID: 1, minute: minute.advanced(by: 1), counts: new),
            MinuteRollup(seriesID: 2, minute: minute, counts: counts(frontend, [2_000_000])),
        ]))
        #expect(try await upgraded.windowTotals(of: .backendTTFB, series: [1], minutes: minute...minute)[1]?.hasWholeExponential == false)
        #expect(try await upgraded.windowTotals(of: .backendTTFB, series: [1], minutes: minute.advanced(by: 1)...minute.advanced(by: 1))[1] == new)
        let again = try await open().restore(recentSince: minute)
        #expect(again.totals[1]?.hasWholeExponential == false)
        #expect(again.totals[2]?.hasWholeExponential == true)
        // Pruning the old minute keeps the series classic-only: its history is not whole.
        _ = try await upgraded.prune(before: minute.advanced(by: 1), answersBefore: 0)
        #expect(try await open().restore(recentSince: minute).totals[1]?.hasWholeExponential == false)
    }

    @Test func reportsItsSizeOnDisk() async throws {
        let store = try open()
        #expect(store.sizeInBytes() > 0)
    }
}

