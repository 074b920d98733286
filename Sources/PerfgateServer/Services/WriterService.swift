import Logging
import PerfgateCore
import ServiceLifecycle

/// Keeps the write queue open while the service runs and drains it on shutdown.
///
/// Listed before the HTTP server, so the server stops first and lets in-flight requests finish
/// their commits, then this drains what is left and checkpoints the
/// store so its main file is complete on its own.
struct WriterService: Service {
    let queue: WriteQueue
    let store: any RollupStore
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        await queue.shutdown()
        do {
            try await store.checkpoint()
        } catch {
            // Nothing is lost: the write-ahead log still holds every commit and is replayed at the next start.
            logger.warning("could not checkpoint the store at shutdown", metadata: ["store.error": "\(error)"])
        }
    }
}
