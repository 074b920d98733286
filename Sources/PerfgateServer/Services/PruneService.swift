import Logging
import PerfgateCore
import ServiceLifecycle

/// Every interval, folds the minute windows older than the retention into their series' base.
struct PruneService: Service {
    let queue: WriteQueue
    let clock: any WallClock
    let retentionMinutes: Int64
    let intervalSeconds: Int64
    let logger: Logger

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    await pruneOnce()
                    try await Task.sleep(for: .seconds(intervalSeconds))
                }
            }
        } catch is CancellationError {
            // Shutdown: the next start prunes whatever expired meanwhile.
        }
    }

    /// Prunes now; failures are logged and retried at the next interval.
    func pruneOnce() async {
        let cutoff = clock.now().adding(nanoseconds: -retentionMinutes * Minute.nanoseconds).minute
        do {
            let report = try await queue.prune(before: cutoff)
            if report.rollupsFolded > 0 {
                logger.info("pruned expired minute windows", metadata: ["prune.rollups": "\(report.rollupsFolded)", "prune.before_minute": "\(cutoff.index)"])
            }
        } catch {
            logger.warning("prune failed; will retry", metadata: ["prune.error": "\(error)"])
        }
    }
}
