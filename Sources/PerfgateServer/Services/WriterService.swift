import ServiceLifecycle

/// Keeps the write queue open while the service runs and drains it on shutdown.
///
/// Listed before the HTTP server, so the server stops first and lets in-flight requests finish
/// their commits, then this drains what is left and stops the writer thread.
struct WriterService: Service {
    let queue: WriteQueue

    func run() async throws {
        try? await gracefulShutdown()
        await queue.shutdown()
    }
}
