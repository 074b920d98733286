import Logging
import PerfgateCore
import ServiceLifecycle

/// Every interval, folds the minute windows older than the retention into their series' base,
/// gives up OTLP traces whose spans waited longer than the trace wait for their root, and
/// deletes the series idle for longer than the series TTL (when one is set).
struct PruneService: Service {
    let queue: WriteQueue
    let clock: any WallClock
    let retentionMinutes: Int64
    /// Minutes a series may go unwritten before it is deleted; 0 keeps series forever.
    let seriesTTLMinutes: Int64
    /// Seconds an OTLP span may wait for its trace's root span.
    let traceWaitSeconds: Int64
    let intervalSeconds: Int64
    let logger: Logger

    /// How often spans that waited too long are looked for: a tenth of the trace wait, so a trace
    /// is let go soon after its wait (not up to a prune interval later), and at most the interval.
    var expiryIntervalSeconds: Int64 { max(1, min(intervalSeconds, traceWaitSeconds / 10)) }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var sincePrune = intervalSeconds
                while !Task.isCancelled {
                    if sincePrune >= intervalSeconds {
                        await pruneOnce()
                        sincePrune = 0
                    } else {
                        await expireWaitingSpans()
                    }
                    try await Task.sleep(for: .seconds(expiryIntervalSeconds))
                    sincePrune += expiryIntervalSeconds
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
        await expireWaitingSpans()
        guard seriesTTLMinutes > 0 else { return }
        do {
            _ = try await queue.expire(idleBefore: clock.now().minute.advanced(by: -seriesTTLMinutes))
        } catch {
            logger.warning("expiring idle series failed; will retry", metadata: ["prune.error": "\(error)"])
        }
    }

    /// Gives up the traces whose spans waited longer than the trace wait.
    func expireWaitingSpans() async {
        do {
            // Pass by pass, so that commits run between them however long the backlog.
            var total = Committer.ExpiredTraces()
            let cutoff = clock.now().seconds - traceWaitSeconds
            repeat {
                let pass = try await queue.dropWaitingSpans(receivedBefore: cutoff)
                total.droppedSpans += pass.droppedSpans
                total.droppedTraces += pass.droppedTraces
                total.withoutStages += pass.withoutStages
                total.more = pass.more
            } while total.more
            if total.droppedSpans > 0 {
                logger.warning(
                    "dropped spans whose trace's root span did not arrive in time",
                    metadata: ["otlp.spans": "\(total.droppedSpans)", "otlp.traces": "\(total.droppedTraces)"]
                )
            }
            if total.withoutStages > 0 {
                logger.info(
                    "OTLP traces named no stage and held no model call: nothing counted",
                    metadata: ["otlp.traces": "\(total.withoutStages)"]
                )
            }
        } catch {
            logger.warning("dropping expired spans failed; will retry", metadata: ["prune.error": "\(error)"])
        }
    }
}
