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

        /// Chosen to make room and not closed yet, so the next newcomer chooses another. Changed
        /// only under the registry's lock, which also counts the chosen.
        fileprivate let chosen = Atomic<Bool>(false)

        fileprivate var isChosen: Bool { chosen.load(ordering: .relaxed) }

        /// Bytes of large answers written to it and not yet taken by its socket, and since when
        /// (uptime nanoseconds; 0 while none): written on its loop, read by whoever makes room.
        fileprivate let answerBytes = Atomic<Int>(0)
        fileprivate let answerSince = Atomic<UInt64>(0)
    }

    /// Most connections held before the oldest waiting one is closed.
    let maximum: Int
    /// Every open connection by its number (in opening order), and how many of them were chosen
    /// to make room and are not closed yet.
    private let slots = Mutex<(nextID: UInt64, open: [UInt64: Slot], closing: Int)>((0, [:], 0))
    private let openNow = Atomic<Int>(0)
    /// Set when the cap was passed with no waiting connection to close; cleared when one closes.
    private let full = Atomic<Bool>(false)
    private let limitReachedCount = Atomic<UInt64>(0)
    private let shedCount = Atomic<UInt64>(0)
    private let timedOutCount = Atomic<UInt64>(0)
    private let droppedAnswerCount = Atomic<UInt64>(0)

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
    /// Connections closed because their answer did not fit in the answer budget.
    var droppedAnswers: UInt64 { droppedAnswerCount.load(ordering: .relaxed) }

    /// False only at the cap with every connection being answered.
    var isAccepting: Bool { open < maximum || !full.load(ordering: .relaxed) }

    /// Records a new connection; past the cap, closes the oldest waiting one to make room.
    func register(_ channel: any Channel) -> Slot {
        let slot = slots.withLock { slots in
            let slot = Slot(id: slots.nextID, channel: channel)
            slots.nextID += 1
            slots.open[slot.id] = slot
            return slot
        }
        if openNow.add(1, ordering: .relaxed).newValue == maximum { limitReachedCount.add(1, ordering: .relaxed) }
        makeRoom(sparing: slot.id)
        return slot
    }

    /// Past the cap, chooses the oldest waiting connection (never `spared`, the newcomer) and
    /// closes it on its own loop, if it is still waiting there: a request that completed in the
    /// meantime is answered, and another connection is chosen instead.
    private func makeRoom(sparing spared: UInt64?) {
        let (victim, over) = slots.withLock { slots -> (Slot?, Bool) in
            guard slots.open.count - slots.closing > maximum else { return (nil, false) }
            guard let victim = Self.oldestWaiting(in: slots.open, sparing: spared) else { return (nil, true) }
            victim.chosen.store(true, ordering: .relaxed)
            slots.closing += 1
            return (victim, true)
        }
        guard let victim else {
            if over { full.store(true, ordering: .relaxed) }
            return
        }
        victim.channel.eventLoop.execute {
            guard victim.isWaiting else {
                self.spare(victim)
                self.makeRoom(sparing: nil)
                return
            }
            self.shedCount.add(1, ordering: .relaxed)
            victim.channel.close(promise: nil)
        }
    }

    /// Forgets a closed connection.
    func unregister(_ slot: Slot) {
        let removed = slots.withLock { slots in
            guard slots.open.removeValue(forKey: slot.id) != nil else { return false }
            if slot.isChosen { slots.closing -= 1 }
            return true
        }
        guard removed else { return }
        openNow.subtract(1, ordering: .relaxed)
        full.store(false, ordering: .relaxed)
    }

    /// Makes a chosen connection choosable again: it was being answered by the time its loop looked.
    private func spare(_ slot: Slot) {
        slots.withLock { slots in
            guard slot.isChosen, slots.open[slot.id] != nil else { return }
            slot.chosen.store(false, ordering: .relaxed)
            slots.closing -= 1
        }
    }

    /// Holds a large answer written to `slot` against `budget`; past it, closes the connections
    /// whose answers have waited longest, never `slot`'s own, until what they hold brings the
    /// budget back under.
    func holdAnswer(_ bytes: Int, for slot: Slot, budget: BodyBudget) {
        if slot.answerBytes.add(bytes, ordering: .relaxed).oldValue == 0 {
            slot.answerSince.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
        }
        guard !budget.force(bytes) else { return }
        let victims = slots.withLock { slots -> [Slot] in
            var over = budget.inUse - budget.capacity
            var waiting = slots.open.values.filter { $0.id != slot.id && !$0.isChosen && $0.answerBytes.load(ordering: .relaxed) > 0 }
            waiting.sort { $0.answerSince.load(ordering: .relaxed) < $1.answerSince.load(ordering: .relaxed) }
            var chosen: [Slot] = []
            for victim in waiting where over > 0 {
                victim.chosen.store(true, ordering: .relaxed)
                slots.closing += 1
                over -= victim.answerBytes.load(ordering: .relaxed)
                chosen.append(victim)
            }
            return chosen
        }
        for victim in victims {
            droppedAnswerCount.add(1, ordering: .relaxed)
            victim.channel.close(promise: nil)
        }
    }

    /// Gives back what a large answer held once its socket took it (or the connection closed).
    func releaseAnswer(_ bytes: Int, for slot: Slot, budget: BodyBudget) {
        budget.give(bytes)
        if slot.answerBytes.subtract(bytes, ordering: .relaxed).newValue == 0 {
            slot.answerSince.store(0, ordering: .relaxed)
        }
    }

    /// Counts a connection its deadline closed.
    func recordTimeout() {
        timedOutCount.add(1, ordering: .relaxed)
    }

    /// The connection to close to make room: the oldest that never completed a request, else the
    /// oldest other waiting one. A scan of at most `maximum` entries, made only past the cap.
    private static func oldestWaiting(in open: [UInt64: Slot], sparing spared: UInt64?) -> Slot? {
        var first: Slot?
        var again: Slot?
        for slot in open.values where slot.id != spared && !slot.isChosen {
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
