/// A point in time: nanoseconds since the Unix epoch, UTC.
///
/// Integers, not floating point, so that minute boundaries and comparisons are exact.
package struct Timestamp: Hashable, Comparable, Sendable {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    package var nanoseconds: Int64

    /// A timestamp from nanoseconds since the epoch.
    package init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    /// A timestamp from whole seconds since the epoch.
    package init(seconds: Int64) {
        self.nanoseconds = seconds * 1_000_000_000
    }

    /// Whole seconds since the epoch, rounded down.
    package var seconds: Int64 {
        nanoseconds.floorDivided(by: 1_000_000_000)
    }

    /// The minute this instant falls in.
    package var minute: Minute {
        Minute(index: nanoseconds.floorDivided(by: Minute.nanoseconds))
    }

    package static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    /// This instant moved by a signed number of nanoseconds.
    package func adding(nanoseconds delta: Int64) -> Timestamp {
        Timestamp(nanoseconds: nanoseconds + delta)
    }
}

/// One minute of wall-clock time, the unit of every stored window: the minute index since the epoch.
package struct Minute: Hashable, Comparable, Strideable, Sendable {
    /// Nanoseconds in a minute.
    package static let nanoseconds: Int64 = 60_000_000_000

    /// Minutes since 1970-01-01T00:00Z.
    package var index: Int64

    /// A minute from its index since the epoch.
    package init(index: Int64) {
        self.index = index
    }

    /// The first instant of this minute.
    package var start: Timestamp {
        Timestamp(nanoseconds: index * Minute.nanoseconds)
    }

    package static func < (lhs: Minute, rhs: Minute) -> Bool {
        lhs.index < rhs.index
    }

    package func distance(to other: Minute) -> Int64 {
        other.index - index
    }

    package func advanced(by n: Int64) -> Minute {
        Minute(index: index + n)
    }
}

extension Int64 {
    /// Division rounding towards negative infinity, so instants before the epoch fall in the right minute.
    func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}
