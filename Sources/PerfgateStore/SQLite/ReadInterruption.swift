import CSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One read on a reader connection that its caller may call off: a read whose client went away
/// stops within a few thousand SQLite steps instead of scanning the rest of its rows.
final class ReadInterruption: Sendable {
    private let cancelled = Atomic<Bool>(false)

    /// Calls the read off; it throws `CancellationError` at its next check.
    func cancel() {
        cancelled.store(true, ordering: .relaxed)
    }

    /// Runs `body` on `connection`, interrupting its statements once the read is called off.
    func during<T>(_ connection: SQLiteConnection, _ body: (SQLiteConnection) throws -> T) throws -> T {
        guard !cancelled.load(ordering: .relaxed) else { throw CancellationError() }
        Self.yieldToWriters()
        sqlite3_progress_handler(
            connection.handle, 4096,
            { context in Unmanaged<ReadInterruption>.fromOpaque(context!).takeUnretainedValue().cancelled.load(ordering: .relaxed) ? 1 : 0 },
            Unmanaged.passUnretained(self).toOpaque()
        )
        defer { sqlite3_progress_handler(connection.handle, 0, nil, nil) }
        do {
            return try body(connection)
        } catch where cancelled.load(ordering: .relaxed) {
            throw CancellationError()
        }
    }

    /// Lowers the calling reader thread's priority (nice 10, per thread on Linux): a long read
    /// then takes the cores only when ingest, commits and scrapes leave them idle.
    private static func yieldToWriters() {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        #endif
    }
}
