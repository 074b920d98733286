import Foundation
import Logging
import PerfgateCore
import PerfgateStore
import PerfgateTestSupport
import PostgresNIO
import Synchronization
import Testing

/// A new database on the PostgreSQL server `PERFGATE_TEST_POSTGRES` names (scripts/test starts a
/// throwaway one); nil when the variable is unset, and the tests that need one are skipped.
enum TestDatabase {
    static let serverURL = ProcessInfo.processInfo.environment["PERFGATE_TEST_POSTGRES"]

    /// Runs `sql` on the database at `location`, as an operator (or a disk) would behind perfgate's back.
    static func execute(_ sql: String, on location: PostgresLocation) async throws {
        let client = PostgresClient(
            configuration: .init(host: location.host, port: location.port, username: location.user, password: nil, database: location.database, tls: .disable),
            backgroundLogger: Logger(label: "perfgate.tests")
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await client.query(PostgresQuery(unsafeSQL: sql))
            group.cancelAll()
        }
    }

    /// Runs the query `sql` on the database at `location`, handing each row to `row`.
    static func query(_ sql: String, on location: PostgresLocation, _ row: @escaping @Sendable (PostgresRow) throws -> Void) async throws {
        let client = PostgresClient(
            configuration: .init(host: location.host, port: location.port, username: location.user, password: nil, database: location.database, tls: .disable),
            backgroundLogger: Logger(label: "perfgate.tests")
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            for try await each in try await client.query(PostgresQuery(unsafeSQL: sql)) { try row(each) }
            group.cancelAll()
        }
    }

    static func make() async throws -> PostgresLocation {
        let server = try PostgresLocation(url: serverURL!)
        let name = "perfgate_swift_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased())"
        let client = PostgresClient(
            configuration: .init(host: server.host, port: server.port, username: server.user, password: nil, database: server.database, tls: .disable),
            backgroundLogger: Logger(label: "perfgate.tests")
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            group.cancelAll()
        }
        var location = server
        location.database = name
        return location
    }
}

@Suite(.enabled(if: TestDatabase.serverURL != nil, "PERFGATE_TEST_POSTGRES names no PostgreSQL server"))
struct PostgresRollupStoreTests {
    let layouts = BucketLayouts.seed
    let minute = Minute(index: 29_932_080)
    let ttfb = SeriesKey(.backendTTFB, ["openrouter", "gpt-4o", "/v1/chat/completions"])
    let frontend = SeriesKey(.frontendProcessing, ["/v1/chat/completions"])
    /// Any key: a store is handed identifiers, it does not make them.
    let idKey = SeriesIDKey(bytes: Array(repeating: 0x5A, count: 16))!

    private func counts(_ key: SeriesKey, _ values: [Int64]) -> HistogramCounts {
        observed(key, values, layouts: layouts)
    }

    private func random(_ key: SeriesKey, _ count: Int, _ generator: inout some RandomNumberGenerator) -> HistogramCounts {
        counts(key, (0..<count).map { _ in Int64.random(in: 1...12_000_000_000, using: &generator) })
    }

    private func open(_ location: PostgresLocation, _ instance: String) async throws -> PostgresRollupStore {
        try await PostgresRollupStore.open(location, instance: instance, layouts: layouts)
    }

    @Test func eachReplicaRestoresItsOwnCountsAndReadsSeeAll() async throws {
        let location = try await TestDatabase.make()
        let a = try await open(location, "a")
        let b = try await open(location, "b")
        var generator = SystemRandomNumberGenerator()
        let records = [SeriesRecord(id: ttfb.sharedID(keyedBy: idKey), key: ttfb), SeriesRecord(id: frontend.sharedID(keyedBy: idKey), key: frontend)]
        var own: [String: HistogramCounts] = ["a": HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount), "b": HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount)]
        // More commits than a compaction's period, so rows are folded along the way.
        for round in 0..<(PostgresRollupStore.compactCommits + 5) {
            for (name, store) in [("a", a), ("b", b)] {
                let added = random(ttfb, Int.random(in: 1...9, using: &generator), &generator)
                own[name]!.add(added)
                // Both create the same series in their first commit.
                try await store.commit(CommitBatch(
                    newSeries: round == 0 ? records : [],
                    rollups: [MinuteRollup(seriesID: ttfb.sharedID(keyedBy: idKey), minute: minute.advanced(by: Int64(round % 3)), counts: added)]
                ))
            }
        }
        try await a.checkpoint()
        let reopened = try await open(location, "a")
        let restored = try await reopened.restore(recentSince: minute)
        #expect(Set(restored.series.map(\.key)) == [ttfb, frontend])
        #expect(restored.totals[ttfb.sharedID(keyedBy: idKey)] == own["a"])
        #expect(try await open(location, "b").restore(recentSince: minute).totals[ttfb.sharedID(keyedBy: idKey)] == own["b"])
        var all = own["a"]!
        all.add(own["b"]!)
        let window = try await a.windowTotals(of: .backendTTFB, series: [ttfb.sharedID(keyedBy: idKey)], minutes: minute...minute.advanced(by: 2))
        #expect(window[ttfb.sharedID(keyedBy: idKey)] == all)
        let sums = try await b.minuteSums(of: [.backendTTFB], since: minute)
        #expect(sums.reduce(Int128(0)) { $0 + $1.sumNanoseconds } == all.sumNanoseconds)
    }

    /// Rows damaged behind perfgate's back (the bucket list that crash-looped a server, counts of
    /// another length, a series of no known family) are skipped, counted, and cost only their own
    /// counts: restore, reads, compaction and prune go on with the rest.
    @Test func damagedRowsAreSkippedAndCountedWhereTheyAreRead() async throws {
        let location = try await TestDatabase.make()
        let store = try await open(location, "a")
        var generator = SystemRandomNumberGenerator()
        let keys = ["p1", "p2", "p3", "p4"].map { SeriesKey(.backendTTFB, [$0, "m", "/v1/chat/completions"]) }
        var sent: [SeriesID: HistogramCounts] = [:]
        for (index, key) in keys.enumerated() {
            let added = random(key, Int.random(in: 3...30, using: &generator), &generator)
            sent[key.sharedID(keyedBy: idKey)] = added
            try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: key.sharedID(keyedBy: idKey), key: key)], rollups: [MinuteRollup(seriesID: key.sharedID(keyedBy: idKey), minute: minute.advanced(by: Int64(index % 2)), counts: added)]))
        }
        try await TestDatabase.execute("UPDATE rollup SET exponential = '\\x060002ffffffff0f01feffffff1f01' WHERE series_id = \(keys[0].sharedID(keyedBy: idKey))", on: location)
        try await TestDatabase.execute("UPDATE rollup SET buckets = '\\x0102' WHERE series_id = \(keys[1].sharedID(keyedBy: idKey))", on: location)
        try await TestDatabase.execute("UPDATE series SET metric = 'no_such_family' WHERE id = \(keys[2].sharedID(keyedBy: idKey))", on: location)

        let reopened = try await open(location, "a")
        let restored = try await reopened.restore(recentSince: minute)
        #expect(restored.totals[keys[3].sharedID(keyedBy: idKey)] == sent[keys[3].sharedID(keyedBy: idKey)])
        #expect(restored.totals[keys[0].sharedID(keyedBy: idKey)]?.count ?? 0 == 0 && restored.totals[keys[1].sharedID(keyedBy: idKey)]?.count ?? 0 == 0)
        #expect(!restored.series.contains { $0.id == keys[2].sharedID(keyedBy: idKey) })
        #expect(reopened.corruptRows.count >= 3, "\(reopened.corruptRows.examples)")
        let window = try await reopened.windowTotals(of: .backendTTFB, series: Set(keys.map { $0.sharedID(keyedBy: idKey) }), minutes: minute...minute.advanced(by: 1))
        #expect(window[keys[3].sharedID(keyedBy: idKey)] == sent[keys[3].sharedID(keyedBy: idKey)] && window[keys[0].sharedID(keyedBy: idKey)] == nil)
        // Folding the damaged minutes away drops the damaged rows, counted, and keeps the rest.
        _ = try await reopened.prune(before: minute.advanced(by: 5), answersBefore: 0)
        #expect(try await open(location, "a").restore(recentSince: minute).totals[keys[3].sharedID(keyedBy: idKey)] == sent[keys[3].sharedID(keyedBy: idKey)])
    }

    /// Quarantine moves every damaged row of every replica out of the tables replicas read, as it
    /// was, with why; a replica opened afterwards finds no damage and the intact counts whole.
    @Test func quarantineSetsDamagedRowsAsideForEveryReplica() async throws {
        let location = try await TestDatabase.make()
        let replicas = [try await open(location, "a"), try await open(location, "b")]
        var generator = SystemRandomNumberGenerator()
        let keys = ["p1", "p2", "p3", "p4"].map { SeriesKey(.backendTTFB, [$0, "m", "/v1/chat/completions"]) }
        let ids = keys.map { $0.sharedID(keyedBy: idKey) }
        var sent: [SeriesID: HistogramCounts] = [:]
        for (index, key) in keys.enumerated() {
            let added = random(key, Int.random(in: 3...30, using: &generator), &generator)
            sent[ids[index]] = added
            try await replicas[index % 2].commit(CommitBatch(newSeries: [SeriesRecord(id: ids[index], key: key)], rollups: [MinuteRollup(seriesID: ids[index], minute: minute, counts: added)]))
        }
        try await replicas[0].commit(CommitBatch(newSeries: [], rollups: [], pendingSpans: [PendingSpan(OTLPSpan(traceID: TraceID(high: 1, low: 2), spanID: 3), receivedAt: 1_000)]))
        try await TestDatabase.execute("UPDATE rollup SET exponential = '\\x060002ffffffff0f01feffffff1f01' WHERE series_id = \(ids[0])", on: location)
        try await TestDatabase.execute("UPDATE rollup SET buckets = '\\x0102' WHERE series_id = \(ids[1])", on: location)
        try await TestDatabase.execute("UPDATE series SET metric = 'no_such_family' WHERE id = \(ids[2])", on: location)
        try await TestDatabase.execute("UPDATE pending_span SET span = '\\xff'", on: location)

        let moved = try await replicas[1].quarantineDamagedRows()
        #expect(moved.count == 5, "\(moved)")
        #expect(moved.contains { $0.contains("rollup of series \(ids[0])") && $0.contains("(replica a)") && $0.contains("damaged exponential buckets") })
        #expect(moved.contains { $0.contains("rollup of series \(ids[2])") && $0.contains("no such series") })
        #expect(moved.contains { $0.contains("pending_span") })
        #expect(try await replicas[1].quarantineDamagedRows().isEmpty)
        for instance in ["a", "b"] {
            let reopened = try await open(location, instance)
            let restored = try await reopened.restore(recentSince: minute)
            _ = try await reopened.pendingSpans(of: [TraceID(high: 1, low: 2)])
            #expect(reopened.corruptRows.count == 0, "\(reopened.corruptRows.examples)")
            #expect(Set(restored.series.map(\.id)) == [ids[0], ids[1], ids[3]])
        }
        let window = try await replicas[0].windowTotals(of: .backendTTFB, series: Set(ids), minutes: minute...minute)
        #expect(window == [ids[3]: sent[ids[3]]!])
    }

    @Test func prunesRacingFromEveryReplicaFoldEachRowOnce() async throws {
        let location = try await TestDatabase.make()
        let stores = try await [open(location, "a"), open(location, "b"), open(location, "c")]
        var generator = SystemRandomNumberGenerator()
        try await stores[0].commit(CommitBatch(newSeries: [SeriesRecord(id: ttfb.sharedID(keyedBy: idKey), key: ttfb)], rollups: []))
        var expected: [HistogramCounts] = []
        for store in stores {
            var total = HistogramCounts(bucketCount: layouts[.backendTTFB].bucketCount)
            for offset in 0..<10 {
                let added = random(ttfb, 5, &generator)
                total.add(added)
                try await store.commit(CommitBatch(newSeries: [], rollups: [MinuteRollup(seriesID: ttfb.sharedID(keyedBy: idKey), minute: minute.advanced(by: Int64(offset)), counts: added)]))
            }
            expected.append(total)
        }
        let reports = try await withThrowingTaskGroup(of: PruneReport.self) { group in
            for store in stores { group.addTask { try await store.prune(before: minute.advanced(by: 6), answersBefore: 0) } }
            return try await group.reduce(into: [PruneReport]()) { $0.append($1) }
        }
        // However the three interleaved, the 18 rows (6 minutes of 3 replicas) were folded once.
        #expect(reports.map(\.rollupsFolded).reduce(0, +) == 18)
        for (store, total) in zip(stores, expected) {
            #expect(try await store.restore(recentSince: minute).totals[ttfb.sharedID(keyedBy: idKey)] == total)
        }
        #expect(try await stores[1].windowTotals(of: .backendTTFB, series: [ttfb.sharedID(keyedBy: idKey)], minutes: minute...minute.advanced(by: 5)).isEmpty)
    }

    @Test func anAnswerKeyTakenByAnotherReplicaFailsTheCommitWhole() async throws {
        let location = try await TestDatabase.make()
        let a = try await open(location, "a")
        let b = try await open(location, "b")
        let answer = IdempotentAnswer(key: "k", bodyFingerprint: 7, status: 200, body: Array("{}".utf8), createdAt: 1_000)
        try await a.commit(CommitBatch(newSeries: [SeriesRecord(id: ttfb.sharedID(keyedBy: idKey), key: ttfb)], rollups: [], answers: [answer], answersKeptSince: 900))
        let attempt = CommitBatch(
            newSeries: [SeriesRecord(id: frontend.sharedID(keyedBy: idKey), key: frontend)],
            rollups: [MinuteRollup(seriesID: frontend.sharedID(keyedBy: idKey), minute: minute, counts: counts(frontend, [5]))],
            answers: [IdempotentAnswer(key: "k", bodyFingerprint: 7, status: 200, body: Array("{}".utf8), createdAt: 1_001)], answersKeptSince: 900
        )
        await #expect(throws: AnswerTaken.self) { try await b.commit(attempt) }
        let restored = try await b.restore(recentSince: minute)
        #expect(restored.series.map(\.key) == [ttfb])
        #expect(try await b.answer(forKey: "k", since: 900) == answer)
        // Once expired, the key is free again.
        var later = attempt
        later.answersKeptSince = 1_000_000
        try await b.commit(later)
        #expect(try await a.answer(forKey: "k", since: 900)?.createdAt == 1_001)
    }

    /// Kept answers stay within the room over every replica: each replica counts the table when
    /// it has kept a hundredth of the room since it last did, and lets the oldest go.
    @Test func keptAnswersStayWithinTheirRoomOverEveryReplica() async throws {
        let location = try await TestDatabase.make()
        let room = AnswerRoom(maxAnswers: 200, maxBytes: 60_000)
        let replicas = [
            try await PostgresRollupStore.open(location, instance: "a", layouts: layouts, answerRoom: room),
            try await PostgresRollupStore.open(location, instance: "b", layouts: layouts, answerRoom: room),
        ]
        var generator = SplitMix(seed: 17)
        var next = 0
        for turn in 0..<120 {
            let count = 1 + generator.next(below: 9)
            let answers = (next..<(next + count)).map {
                IdempotentAnswer(key: "k\($0)", bodyFingerprint: 1, status: 200, body: Array(repeating: 0x20, count: 50 + generator.next(below: 400)), createdAt: 1_000 + Int64($0))
            }
            try await replicas[turn % 2].commit(CommitBatch(newSeries: [], rollups: [], answers: answers))
            next += count
        }
        let counted = Mutex((count: 0, bytes: 0))
        try await TestDatabase.query("SELECT count(*), coalesce(sum(octet_length(body)), 0)::bigint FROM idempotent_answer", on: location) { row in
            let (count, bytes) = try row.decode((Int64, Int64).self)
            counted.withLock { $0 = (Int(count), Int(bytes)) }
        }
        let kept = counted.withLock { $0 }
        // Each replica may add up to a hundredth of the room (and one commit) before it counts.
        #expect(kept.count <= 200 + 2 * (2 + 9) && kept.bytes <= 60_000 + 2 * (600 + 9 * 450), "\(kept)")
        #expect(room.forgottenCount == next - kept.count)
        #expect(room.forgottenCount > 0)
        #expect(try await replicas[0].answer(forKey: "k0", since: 0) == nil)
        #expect(try await replicas[1].answer(forKey: "k\(next - 1)", since: 0) != nil)
    }

    /// A series whose id another holds loses its own counts, counted and described; the rest of
    /// the commit (another series, an answer) is stored.
    @Test func aCollidingSeriesIdCostsOnlyThatSeries() async throws {
        let location = try await TestDatabase.make()
        let store = try await open(location, "a")
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 42, key: ttfb)], rollups: [MinuteRollup(seriesID: 42, minute: minute, counts: counts(ttfb, [7]))]))
        let other = SeriesKey(.frontendProcessing, ["/v1/other"])
        try await store.commit(CommitBatch(
            newSeries: [SeriesRecord(id: 42, key: frontend), SeriesRecord(id: 43, key: other)],
            rollups: [MinuteRollup(seriesID: 42, minute: minute, counts: counts(frontend, [5])), MinuteRollup(seriesID: 43, minute: minute, counts: counts(other, [9]))],
            answers: [IdempotentAnswer(key: "kept", bodyFingerprint: 1, status: 200, body: [], createdAt: 1_000)]
        ))
        #expect(store.collidingSeries.count == 1)
        #expect(store.collidingSeries.examples.first?.contains("frontend_processing_seconds {/v1/chat/completions} has id 42") == true)
        let restored = try await store.restore(recentSince: minute)
        #expect(Set(restored.series.map(\.key)) == [ttfb, other])
        #expect(restored.totals[42] == counts(ttfb, [7]))
        #expect(restored.totals[43] == counts(other, [9]))
        #expect(try await store.answer(forKey: "kept", since: 0) != nil)
    }

    /// The first migration makes the database's key; every replica reads the same one, and
    /// another database has another.
    @Test func everyReplicaOfADatabaseReadsItsOneKey() async throws {
        let location = try await TestDatabase.make()
        let a = try await open(location, "a")
        let b = try await open(location, "b")
        #expect(a.seriesIDKey == b.seriesIDKey)
        let elsewhere = try await open(try await TestDatabase.make(), "a")
        #expect(elsewhere.seriesIDKey != a.seriesIDKey)
    }

    @Test func aCallWhoseConnectionClosesUnderItFailsAndLaterCallsGetAnother() async throws {
        let store = try await open(try await TestDatabase.make(), "a")
        let logger = Logger(label: "perfgate.tests")
        // The server ends the backend between two statements of one call, as a fast shutdown
        // does; the second statement goes to a closed connection.
        let cutOff = await finished(within: .seconds(20)) {
            try await store.withConnection { connection in
                _ = try? await connection.query("SELECT pg_terminate_backend(pg_backend_pid())", logger: logger)
                try await connection.closeFuture.get()
                try await connection.query("COMMIT", logger: logger)
            }
        }
        switch cutOff {
        case nil: Issue.record("a statement on a closed connection was still waiting after 20 s")
        case .success: Issue.record("a statement on a closed connection succeeded")
        case .failure(let error):
            guard case StoreError.connectionLost = error else { Issue.record("cut off with \(error), not as a lost connection"); break }
        }
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: ttfb.sharedID(keyedBy: idKey), key: ttfb)], rollups: [
            MinuteRollup(seriesID: ttfb.sharedID(keyedBy: idKey), minute: minute, counts: counts(ttfb, [1_500_000, 7_250_000_001])),
        ]))
        #expect(try await store.restore(recentSince: minute).totals[ttfb.sharedID(keyedBy: idKey)] == counts(ttfb, [1_500_000, 7_250_000_001]))
    }

    @Test func aChangedBucketLayoutIsRefused() async throws {
        let location = try await TestDatabase.make()
        _ = try await open(location, "a")
        let changed = BucketLayouts(overrides: [.backendTTFB: try BucketLayout(seconds: ["1", "2"])])
        await #expect(throws: StoreError.self) {
            _ = try await PostgresRollupStore.open(location, instance: "a", layouts: changed)
        }
    }
}

/// What `body` came to, or nil when it had not finished within `limit` (it is left running: a
/// hung call cannot be cancelled).
private func finished<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error>? {
    await withCheckedContinuation { continuation in
        let waiter = Waiter(continuation)
        Task {
            do { waiter.resume(.success(try await body())) } catch { waiter.resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            waiter.resume(nil)
        }
    }
}

/// A continuation resumed by whichever comes first.
private final class Waiter<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Result<T, any Error>?, Never>?>

    init(_ continuation: CheckedContinuation<Result<T, any Error>?, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ result: Result<T, any Error>?) {
        continuation.withLock { $0.take() }?.resume(returning: result)
    }
}

@Suite struct PostgresLocationTests {
    @Test func urlsAreReadAsLibpqReadsThem() throws {
        let full = try PostgresLocation(url: "postgresql://app:p%40ss@db.internal:6543/metrics?sslmode=verify-full&sslrootcert=/ca.pem", environment: [:])
        #expect(full.host == "db.internal" && full.port == 6543 && full.user == "app" && full.database == "metrics")
        #expect(full.sslMode == .verifyFull && full.rootCertificatePath == "/ca.pem")
        #expect(full.description == "postgres://app:***@db.internal:6543/metrics?sslmode=verify-full")
        let bare = try PostgresLocation(url: "postgres://", environment: ["PGUSER": "ops", "PGPASSWORD": "x"])
        #expect(bare.host == "localhost" && bare.port == 5432 && bare.user == "ops" && bare.database == "ops" && bare.sslMode == .prefer)
        #expect(!bare.description.contains("x@"))
        #expect(throws: PostgresLocationError.self) { try PostgresLocation(url: "postgres://h/db?sslmode=always", environment: [:]) }
        #expect(throws: PostgresLocationError.self) { try PostgresLocation(url: "mysql://h/db", environment: [:]) }
    }
}
