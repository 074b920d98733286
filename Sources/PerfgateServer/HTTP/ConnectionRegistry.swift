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
        /// When it opened, in uptime nanoseconds.
        let openedAt = NIODeadline.now().uptimeNanoseconds
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

        /// Bytes it holds of a memory budget, and since when (uptime nanoseconds; 0 while none),
        /// per ledger: written on its loop, read by whoever makes room.
        fileprivate let bodyBytes = Atomic<Int>(0)
        fileprivate let bodySince = Atomic<UInt64>(0)
        fileprivate let answerBytes = Atomic<Int>(0)
        fileprivate let answerSince = Atomic<UInt64>(0)

        fileprivate func bytes(_ ledger: Ledger) -> Int {
            switch ledger {
            case .bodies: bodyBytes.load(ordering: .relaxed)
            case .answers: answerBytes.load(ordering: .relaxed)
            }
        }

        fileprivate func since(_ ledger: Ledger) -> UInt64 {
            switch ledger {
            case .bodies: bodySince.load(ordering: .relaxed)
            case .answers: answerSince.load(ordering: .relaxed)
            }
        }

        /// Adds `delta` to what it holds of `ledger`, noting when it started holding.
        fileprivate func add(_ delta: Int, to ledger: Ledger) {
            switch ledger {
            case .bodies: Self.add(delta, bytes: bodyBytes, since: bodySince)
            case .answers: Self.add(delta, bytes: answerBytes, since: answerSince)
            }
        }

        private static func add(_ delta: Int, bytes: borrowing Atomic<Int>, since: borrowing Atomic<UInt64>) {
            let after = bytes.add(delta, ordering: .relaxed).newValue
            if after == 0 {
                since.store(0, ordering: .relaxed)
            } else if after == delta {
                since.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
            }
        }
    }

    /// The memory budgets connections hold bytes of.
    enum Ledger {
        /// Request bodies arriving.
        case bodies
        /// Large answers written and not yet taken by the client's socket.
        case answers
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

    /// Holds `bytes` for `slot` against `budget`. When they do not fit, the connections that have
    /// held bytes of the same ledger longest are closed (never `slot`'s own; an upload only after
    /// `uploadGrace`) until what they hold would make room: a client that trickles a body, or does
    /// not read its answers, has had its chance. With `force` the bytes are held anyway (an answer already made); otherwise they are
    /// not held, and false says so (the request is refused, and its retry finds the room).
    @discardableResult
    func hold(_ bytes: Int, for slot: Slot, in ledger: Ledger, budget: BodyBudget, force: Bool) -> Bool {
        let fits = force ? budget.force(bytes) : budget.take(bytes)
        if fits || force { slot.add(bytes, to: ledger) }
        guard !fits else { return true }
        let victims = slots.withLock { slots -> [Slot] in
            var needed = force ? budget.inUse - budget.capacity : bytes - (budget.capacity - budget.inUse)
            // An upload gets a grace period: a client sending 8 MiB at 4 MB/s is not slow.
            let startedBefore = ledger == .bodies ? NIODeadline.now().uptimeNanoseconds &- Self.uploadGrace : .max
            var holding = slots.open.values.filter {
                $0.id != slot.id && !$0.isChosen && $0.bytes(ledger) > 0 && $0.since(ledger) <= startedBefore
            }
            holding.sort { $0.since(ledger) < $1.since(ledger) }
            var chosen: [Slot] = []
            for victim in holding where needed > 0 {
                victim.chosen.store(true, ordering: .relaxed)
                slots.closing += 1
                needed -= victim.bytes(ledger)
                chosen.append(victim)
            }
            return chosen
        }
        for victim in victims {
            switch ledger {
            case .answers: droppedAnswerCount.add(1, ordering: .relaxed)
            case .bodies: shedCount.add(1, ordering: .relaxed)
            }
            victim.channel.close(promise: nil)
        }
        return force
    }

    /// How long an upload may hold its bytes before a request that does not fit may close it.
    static let uploadGrace: UInt64 = 2_000_000_000

    /// Gives back bytes `slot` held.
    func release(_ bytes: Int, for slot: Slot, in ledger: Ledger, budget: BodyBudget) {
        guard bytes > 0 else { return }
        budget.give(bytes)
        slot.add(-bytes, to: ledger)
    }

    /// Counts a connection its deadline closed.
    func recordTimeout() {
        timedOutCount.add(1, ordering: .relaxed)
    }

    /// The connection to close to make room: the oldest that never completed a request, else the
    /// oldest other waiting one; connections opened less than `youth` ago only when no other
    /// waits (a new client has had no time to send its request, and an attacker who reconnects
    /// as fast as it is closed must not push it out). A scan of the open connections, made only
    /// past the cap.
    private static func oldestWaiting(in open: [UInt64: Slot], sparing spared: UInt64?) -> Slot? {
        let youngAfter = NIODeadline.now().uptimeNanoseconds &- youth
        var best: (rank: Int, slot: Slot)?
        for slot in open.values where slot.id != spared && !slot.isChosen {
            let rank: Int
            switch slot.phase {
            case .answering: continue
            case _ where slot.openedAt > youngAfter: rank = 2
            case .waitingFirst: rank = 0
            case .waitingAgain: rank = 1
            }
            if let current = best, (current.rank, current.slot.id) < (rank, slot.id) { continue }
            best = (rank, slot)
        }
        return best?.slot
    }

    /// How long a new connection is spared while older ones can make room.
    static let youth: UInt64 = 1_000_000_000
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
