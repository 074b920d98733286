// Writes a perfgate store holding `series` x `minutes` rollup rows (the most recent minutes, so
// none is past the retention), for measuring start-up time against a large store.
//
// Usage: store-fixture --db PATH [--series 10000] [--minutes 100]
import Foundation
import PerfgateCore
import PerfgateStore

func option(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let parsed = Int(arguments[index + 1]) else { return value }
    return parsed
}

guard let dbIndex = CommandLine.arguments.firstIndex(of: "--db"), dbIndex + 1 < CommandLine.arguments.count else {
    print("usage: store-fixture --db PATH [--series 10000] [--minutes 100]")
    exit(2)
}
let path = CommandLine.arguments[dbIndex + 1]
let seriesCount = option("--series", default: 10_000)
let minutes = option("--minutes", default: 100)

let store = try await SQLiteRollupStore.open(path: path, layouts: .seed, durability: .normal)
let now = SystemWallClock().now().minute
let seriesPerCommit = 100
var written = 0
for first in stride(from: 0, to: seriesCount, by: seriesPerCommit) {
    let records = (first..<min(first + seriesPerCommit, seriesCount)).map { i in
        // Half TTFB, half streaming: the two families with the most labels.
        let metric: HistogramMetric = i % 2 == 0 ? .backendTTFB : .streamingDuration
        return SeriesRecord(id: Int64(i + 1), key: SeriesKey(metric, ["provider-\(i / 2 % 25)", "model-\(i / 50)", "/v1/chat/completions"]))
    }
    var rollups: [MinuteRollup] = []
    for record in records {
        let layout = BucketLayouts.seed[record.key.metric]
        for offset in 0..<minutes {
            var counts = HistogramCounts(bucketCount: layout.bucketCount)
            let nanoseconds = Int64((Int(record.id) * 7919 + offset * 104_729) % 6000) * 1_000_000
            counts.observe(nanoseconds: nanoseconds, bucket: layout.bucketIndex(for: nanoseconds))
            rollups.append(MinuteRollup(seriesID: record.id, minute: now.advanced(by: -Int64(offset)), counts: counts))
        }
    }
    try await store.commit(CommitBatch(newSeries: records, rollups: rollups))
    written += rollups.count
}
print("store-fixture: \(path): \(seriesCount) series x \(minutes) minutes = \(written) rollup rows, \(store.sizeInBytes()) bytes")
