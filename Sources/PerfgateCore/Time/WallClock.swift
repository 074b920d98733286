#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The source of "now" for everything time-dependent, so tests can drive time by hand.
package protocol WallClock: Sendable {
    /// The current wall-clock time.
    func now() -> Timestamp
}

/// The operating system's real-time clock.
package struct SystemWallClock: WallClock {
    /// The system clock.
    package init() {}

    package func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }
}

/// A clock that moves only when told to; for tests of windows, pruning and trends.
package final class ManualWallClock: WallClock {
    private let current: Mutex<Timestamp>

    /// A clock stopped at `start`.
    package init(_ start: Timestamp) {
        current = Mutex(start)
    }

    package func now() -> Timestamp {
        current.withLock { $0 }
    }

    /// Moves the clock forward (or back) by whole seconds.
    package func advance(seconds: Int64) {
        current.withLock { $0 = $0.adding(nanoseconds: seconds * 1_000_000_000) }
    }

    /// Sets the clock to an instant.
    package func set(_ timestamp: Timestamp) {
        current.withLock { $0 = timestamp }
    }
}
