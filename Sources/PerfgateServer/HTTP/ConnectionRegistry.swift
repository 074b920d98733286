import HummingbirdCore
import NIOCore
import Synchronization

/// Every open connection, in the order they opened, and what each is doing; makes room at the
/// cap by closing the oldest connection that is waiting on its client.
///
/// Stopping to accept at the cap (what perfgate did first) let anyone without a token lock
/// everyone out: a thousand sockets that send half a request, or nothing, held every place for
/// a whole `--request-timeout`, and a new client waited in the listen queue. A connection that is
/// waiting on its client has cost the server nothing it would lose by closing it: nothing of a
/// request is applied before the request has fully arrived, and an idle keep-alive connection
/// may be closed at any time (RFC 9112, 9.6). So at the cap a new connection is let in and the
/// oldest waiting one is closed, those that never completed a request first (half-sent heads,
/// stalled TLS handshakes, bodies trickled after their answer), then idle keep-alives. Only when
/// every connection is being answered does accepting stop until one closes.
final class ConnectionRegistry: Sendable {
    /// What a connection is doing, as the shedder sees it.
    enum Phase: UInt8 {
        /// Waiting on a client that has not completed a request yet.
        case waitingFirst
        /// Waiting on a client that completed at least one request: an idle keep-alive, or the next request arriving.
        case waitingAgain
        /// The server owes it an answer: working on its request or writing the answer.
        case answering
    }

    /// One connection: its channel and phase. The phase is written on the channel's event loop only.
    final class Slot: Sendable {
        let id: UInt64
        let channel: any Channel
        private let phaseValue = Atomic<UInt8>(Phase.waitingFirst.rawValue)

        init(id: UInt64, channel: any Channel) {
            self.id = id
            self.channel = channel
        }

        var phase: Phase {
            get { Phase(rawValue: phaseValue.load(ordering: .relaxed))! }
            set { phaseValue.store(newValue.rawValue, ordering: .relaxed) }
        }

        var isWaiting: Bool { phase != .answering }
    }

    /// Most connections held before the oldest waiting one is closed.
    let maximum: Int
    private let slots = Mutex<(nextID: UInt64, open: [UInt64: Slot])>((0, [:]))
    private let openNow = Atomic<Int>(0)
    /// Set when the cap was passed with no waiting connection to close; cleared when one closes.
    private let full = Atomic<Bool>(false)
    private let limitReachedCount = Atomic<UInt64>(0)
    private let shedCount = Atomic<UInt64>(0)
    private let timedOutCount = Atomic<UInt64>(0)

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Connections open now.
    var open: Int { openNow.load(ordering: .relaxed) }
    /// Times a new connection filled the last free place.
    var limitReached: UInt64 { limitReachedCount.load(ordering: .relaxed) }
    /// Connections closed to make room for a new one.
    var shed: UInt64 { shedCount.load(ordering: .relaxed) }
    /// Connections closed because their client missed its deadline.
    var timedOut: UInt64 { timedOutCount.load(ordering: .relaxed) }

    /// False only at the cap with every connection being answered.
    var isAccepting: Bool { open < maximum || !full.load(ordering: .relaxed) }

    /// Records a new connection; past the cap, closes the oldest waiting one to make room.
    func register(_ channel: any Channel) -> Slot {
        let (slot, victim, over) = slots.withLock { slots in
            let slot = Slot(id: slots.nextID, channel: channel)
            slots.nextID += 1
            slots.open[slot.id] = slot
            let over = slots.open.count > maximum
            return (slot, over ? Self.oldestWaiting(in: slots.open, sparing: slot.id) : nil, over)
        }
        if openNow.add(1, ordering: .relaxed).newValue == maximum { limitReachedCount.add(1, ordering: .relaxed) }
        if let victim {
            // Closed on its own loop, and only if it is still waiting: a request that completed in
            // the meantime is answered.
            victim.channel.eventLoop.execute {
                guard victim.isWaiting else { return }
                self.shedCount.add(1, ordering: .relaxed)
                victim.channel.close(promise: nil)
            }
        } else if over {
            full.store(true, ordering: .relaxed)
        }
        return slot
    }

    /// Forgets a closed connection.
    func unregister(_ slot: Slot) {
        let removed = slots.withLock { $0.open.removeValue(forKey: slot.id) != nil }
        guard removed else { return }
        openNow.subtract(1, ordering: .relaxed)
        full.store(false, ordering: .relaxed)
    }

    /// Counts a connection its deadline closed.
    func recordTimeout() {
        timedOutCount.add(1, ordering: .relaxed)
    }

    /// The connection to close to make room: the oldest that never completed a request, else the
    /// oldest other waiting one. A scan of at most `maximum` entries, made only past the cap.
    private static func oldestWaiting(in open: [UInt64: Slot], sparing spared: UInt64) -> Slot? {
        var first: Slot?
        var again: Slot?
        for slot in open.values where slot.id != spared {
            switch slot.phase {
            case .waitingFirst: if first.map({ slot.id < $0.id }) ?? true { first = slot }
            case .waitingAgain: if again.map({ slot.id < $0.id }) ?? true { again = slot }
            case .answering: break
            }
        }
        return first ?? again
    }
}

/// Hummingbird's hook on accepting: accepts while the registry has room or can make it.
struct ConnectionLimit: AvailableConnectionsDelegate {
    let registry: ConnectionRegistry

    // The registry counts connections as their pipelines are set up and torn down.
    mutating func connectionOpened() {}
    mutating func connectionClosed() {}

    func isAcceptingNewConnections() -> Bool {
        registry.isAccepting
    }
}
