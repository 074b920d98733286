#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The source of "now" for everything time-dependent, so tests can drive time by hand.
public protocol WallClock: Sendable {
    /// The current wall-clock time.
    func now() -> Timestamp
}

/// The operating system's real-time clock.
public struct SystemWallClock: WallClock {
    /// The system clock.
    public init() {}

    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }
}

/// A clock that moves only when told to; for tests of windows, pruning and trends.
public final class ManualWallClock: WallClock {
    private let current: Mutex<Timestamp>

    /// A clock stopped at `start`.
    public init(_ start: Timestamp) {
        current = Mutex(start)
    }

    public func now() -> Timestamp {
        current.withLock { $0 }
    }

    /// Moves the clock forward (or back) by whole seconds.
    public func advance(seconds: Int64) {
        current.withLock { $0 = $0.adding(nanoseconds: seconds * 1_000_000_000) }
    }

    /// Sets the clock to an instant.
    public func set(_ timestamp: Timestamp) {
        current.withLock { $0 = timestamp }
    }
}
