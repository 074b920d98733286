import Logging
import PerfgateCore
import ServiceLifecycle

/// With a store shared by several replicas, every `interval`: takes in the series other replicas
/// created and the stage share window of all of them, so that `/v1/trends`, the status page and
/// `stage_percentage` answer alike on every replica. Trend and status reads go to the store
/// itself; only which series exist and the share window are kept here.
///
/// A refresh that fails (the database is down) marks the replica unready until one succeeds.
struct ReplicaView: Service {
    let store: any SharedRollupStore
    let queue: WriteQueue
    let live: LiveMetrics
    let clock: any WallClock
    let logger: Logger

    /// How stale another replica's new series and share-window time may be.
    static let interval: Duration = .seconds(1)

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var cursor: CatalogCursor?
                var failing = false
                while !Task.isCancelled {
                    do {
                        cursor = try await refresh(from: cursor)
                        if failing { logger.info("the shared store answers again") }
                        failing = false
                    } catch {
                        queue.recordStoreFailure(String(describing: error))
                        // Once per outage, not once a second.
                        if !failing { logger.warning("reading the shared store failed; retrying every second", metadata: ["store.error": "\(error)"]) }
                        failing = true
                    }
                    try await Task.sleep(for: Self.interval)
                }
            }
        } catch is CancellationError {
            // Shutdown.
        }
    }

    /// One refresh; returns where the next reading of the series catalog starts.
    func refresh(from cursor: CatalogCursor?) async throws -> CatalogCursor {
        let (records, next) = try await store.series(createdSince: cursor)
        if !records.isEmpty { await queue.adopt(records) }
        // After a commit whose outcome was unknown, even while no request comes.
        await queue.settle()
        let now = clock.now()
        let sums = try await store.minuteSums(of: StageGroup.allCases.map(\.metric), since: live.shareWindowStart(at: now))
        live.replaceShares(sums, now: now)
        return next
    }
}
