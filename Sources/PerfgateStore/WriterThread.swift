import NIOPosix

/// The one thread a store's blocking writes run on, and a task executor on that thread.
///
/// A task that prefers it (the write queue's drain task) runs on the writer's thread itself, so
/// each commit's SQLite calls run inline: no hand-off to the thread and back per commit, which
/// cost two thread wake-ups and left the cores idle while a group commit waited for them. Any
/// other caller is handed over to the thread and resumed when its call is done.
final class WriterThread: TaskExecutor {
    private let pool = NIOThreadPool(numberOfThreads: 1)
    /// Set on the writer's thread only.
    private let marker = ThreadSpecificVariable<Marker>()
    private final class Marker: Sendable {}

    init() {
        pool.start()
        pool.submit { [marker] _ in marker.currentValue = Marker() }
    }

    /// True when called on the writer's thread.
    var isCurrent: Bool { marker.currentValue != nil }

    /// Runs `body` on the writer's thread: inline when already there, else handed over to it.
    /// Not cancelled with the calling task: a write that was asked for is made, or fails on its own.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        if isCurrent { return try body() }
        return try await withCheckedThrowingContinuation { continuation in
            pool.submit { state in
                guard case .active = state else { return continuation.resume(throwing: StoreError.closed) }
                continuation.resume(with: Result { try body() })
            }
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // A job handed over after shutdown still runs (on the caller's thread, which NIO uses
        // then), so that a task preferring this executor always finishes.
        pool.submit { _ in job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Stops the thread once what was handed to it has run.
    func shutdown() {
        pool.shutdownGracefully { _ in }
    }
}
