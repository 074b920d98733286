// Measures what one durable group commit of 50 series costs in perfgate's SQLite store (or, with
// --postgres, in a PostgreSQL database as a replica writes it), against commits of a single series
// on the same store in the same run: the cost of a commit itself (the WAL append and, with full
// durability, the fsync; for PostgreSQL also the round trips) as the baseline.
//
// Usage: store-commit-benchmark [--smoke] [--durability full|normal] [--postgres postgres://…]
import Foundation
import PerfgateCore
import PerfgateStore

let arguments = CommandLine.arguments
let smoke = arguments.contains("--smoke")
let durability = arguments.firstIndex(of: "--durability").flatMap { Durability(rawValue: arguments[$0 + 1]) } ?? .full
let transactions = smoke ? 20 : 1000
let seriesPerCommit = 50

let folder = NSTemporaryDirectory() + "perfgate-store-bench-" + UUID().uuidString
defer { try? FileManager.default.removeItem(atPath: folder) }
let postgres = arguments.firstIndex(of: "--postgres").map { arguments[$0 + 1] }
let store: any RollupStore = if let postgres {
    try await PostgresRollupStore.open(try PostgresLocation(url: postgres), instance: "store-commit-benchmark", layouts: .seed)
} else {
    try await SQLiteRollupStore.open(path: folder + "/bench.sqlite", layouts: .seed, durability: durability)
}

let layout = BucketLayout.default(for: .backendTTFB)
let series = (0..<seriesPerCommit).map { index in
    let key = SeriesKey(.backendTTFB, ["provider", "model-\(index)", "/v1/chat/completions"])
    return SeriesRecord(id: (store as? any SharedRollupStore).map { key.sharedID(keyedBy: $0.seriesIDKey) } ?? Int64(index + 1), key: key)
}
try await store.commit(CommitBatch(newSeries: series, rollups: []))
var counts = HistogramCounts(bucketCount: layout.bucketCount)
counts.observe(nanoseconds: 1_697_000_000, bucket: layout.bucketIndex(for: 1_697_000_000))
let minute = SystemWallClock().now().minute

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let elapsed = start.duration(to: .now).components
    return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
}

let single = try await seconds {
    for index in 0..<transactions {
        try await store.commit(CommitBatch(newSeries: [], rollups: [MinuteRollup(seriesID: series[0].id, minute: minute.advanced(by: Int64(index % 10)), counts: counts)]))
    }
}
let upserts = try await seconds {
    for index in 0..<transactions {
        // Ten minutes in turn: most upserts update an existing row, as under steady load.
        let rollups = series.map { MinuteRollup(seriesID: $0.id, minute: minute.advanced(by: Int64(index % 10)), counts: counts) }
        try await store.commit(CommitBatch(newSeries: [], rollups: rollups))
    }
}
let restored = try await store.restore(recentSince: minute).totals.values.reduce(UInt64(0)) { $0 + $1.count }
precondition(restored == UInt64(transactions * (seriesPerCommit + 1)), "every upsert was counted")

print("store-commit-benchmark store=\(postgres == nil ? "sqlite durability=\(durability.rawValue)" : "postgres") transactions=\(transactions) upserts/transaction=\(seriesPerCommit)")
print(String(format: "  commits of 1 upsert (baseline): %7.3f s  %7.0f commits/s  %6.1f µs/commit", single, Double(transactions) / single, single / Double(transactions) * 1e6))
print(String(format: "  commits of %d upserts:          %7.3f s  %7.0f commits/s  %6.1f µs/commit  %7.0f upserts/s  ratio to baseline %.2f",
             seriesPerCommit, upserts, Double(transactions) / upserts, upserts / Double(transactions) * 1e6,
             Double(transactions * seriesPerCommit) / upserts, upserts / single))
