import Logging
import PerfgateCore

/// What `perfgate check` found, and set aside when asked.
package struct StoreCheckReport: Sendable {
    /// Series read.
    package var series: Int
    /// Damaged rows found by reading the store back as a server does, and the first few.
    package var damaged: Int
    package var examples: [String]
    /// Rows moved to the `quarantined_*` tables, described (with `--quarantine`).
    package var quarantined: [String]
}

/// Reads every row of the store back, as a start and every read do, and gives the rows that are
/// damaged: `perfgate check`, with no server running on the store. With `quarantine`, then moves
/// every damaged row (of every replica, in a shared store) out of the tables servers read.
package func checkStore(_ configuration: ServerConfiguration, quarantine: Bool = false, logger: Logger) async throws -> StoreCheckReport {
    let store = try await openStore(configuration, logger: logger)
    // Every minute, not only the recent ones: each rollup's buckets are decoded, not only summed.
    let restored = try await store.restore(recentSince: Minute(index: 0))
    _ = try await store.pendingSpans(of: Set(restored.pendingTraces.keys))
    let quarantined = quarantine ? try await store.quarantineDamagedRows() : []
    return StoreCheckReport(series: restored.series.count, damaged: store.corruptRows.count, examples: store.corruptRows.examples, quarantined: quarantined)
}
