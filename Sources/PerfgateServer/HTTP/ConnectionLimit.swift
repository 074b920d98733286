import HummingbirdCore
import Synchronization

/// Caps open connections. At the cap perfgate stops accepting: new clients wait in the
/// kernel's listen queue, not refused, until a connection closes (an idle one closes within
/// `--request-timeout`), so a flood of connections cannot exhaust file descriptors or memory.
struct ConnectionLimit: AvailableConnectionsDelegate {
    let maximum: Int
    let counts: ConnectionCounts

    mutating func connectionOpened() {
        counts.opened(reachingLimit: maximum)
    }

    mutating func connectionClosed() {
        counts.closed()
    }

    func isAcceptingNewConnections() -> Bool {
        counts.open < maximum
    }
}

/// Open connections and how often the cap was reached, for `/metrics`.
final class ConnectionCounts: Sendable {
    private let openNow = Atomic<Int>(0)
    private let limitReachedCount = Atomic<UInt64>(0)

    /// Connections open now.
    var open: Int { openNow.load(ordering: .relaxed) }
    /// Times a new connection filled the last free place.
    var limitReached: UInt64 { limitReachedCount.load(ordering: .relaxed) }

    func opened(reachingLimit limit: Int) {
        if openNow.add(1, ordering: .relaxed).newValue == limit {
            limitReachedCount.add(1, ordering: .relaxed)
        }
    }

    func closed() {
        openNow.subtract(1, ordering: .relaxed)
    }
}
