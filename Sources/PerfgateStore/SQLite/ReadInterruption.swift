import CSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One read on a reader connection that its caller may call off (its task cancelled): it stops
/// within a few thousand SQLite steps instead of scanning the rest of its rows.
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

    /// Puts the calling reader thread in the idle scheduling class (per thread on Linux): a long
    /// read then takes a core only when ingest, commits and scrapes leave it idle, and gives it
    /// back the moment one of them wakes. A nice level of 10 was not enough: on two cores, eight
    /// whole-retention readers still made a one-event POST's p99 seven times its idle figure.
    private static func yieldToWriters() {
        #if os(Linux)
        var parameters = sched_param(sched_priority: 0)
        // SCHED_IDLE (5): glibc defines it only under _GNU_SOURCE, which Swift does not import.
        _ = sched_setscheduler(0, 5, &parameters)
        #endif
    }
}
