import Logging
import PerfgateCore

/// Reads every row of the store back, as a start and every read do, and gives the rows that are
/// damaged: `perfgate check`, run beside a server or instead of one.
package func checkStore(_ configuration: ServerConfiguration, logger: Logger) async throws -> (rows: Int, examples: [String], series: Int) {
    let store = try await openStore(configuration, logger: logger)
    // Every minute, not only the recent ones: each rollup's buckets are decoded, not only summed.
    let restored = try await store.restore(recentSince: Minute(index: 0))
    _ = try await store.pendingSpans(of: Set(restored.pendingTraces.keys))
    return (store.corruptRows.count, store.corruptRows.examples, restored.series.count)
}
