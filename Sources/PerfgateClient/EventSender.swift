import Foundation
import Synchronization

/// Sends events to perfgate in batches from a background task, so that the application never
/// waits for perfgate and is never broken by it.
///
/// `submit` appends to a bounded queue under a short lock and returns; past the bound, events
/// are dropped and counted. The background task posts up to `batchSize` events at least every
/// `flushInterval`. A batch that fails with a connection error or a transient status (408, 429,
/// 5xx) is sent again after an exponential backoff under the same `Idempotency-Key`, so a retry
/// of a batch perfgate already applied is not counted twice.
public final class EventSender: Sendable {
    /// The sender's bounds and pace.
    public struct Configuration: Sendable {
        /// Most events waiting; more are dropped.
        public var maxQueue = 10_000
        /// Most events per request.
        public var batchSize = 500
        /// Longest wait before queued events are sent.
        public var flushInterval: Duration = .seconds(1)
        /// Longest wait between two attempts at one batch.
        public var maxBackoff: Duration = .seconds(30)
        /// How long `shutdown()` keeps trying to send what is queued.
        public var shutdownTimeout: Duration = .seconds(5)

        /// The defaults.
        public init() {}
    }

    /// What the sender has done so far.
    public struct Statistics: Sendable, Equatable {
        /// Events perfgate acknowledged.
        public var sent = 0
        /// Events dropped because the queue was full, or given up at shutdown.
        public var dropped = 0
        /// Events perfgate refused for good (4xx other than 408 and 429).
        public var rejected = 0
        /// Batches sent again after a transient failure.
        public var retries = 0

        /// Figures, zero by default.
        public init(sent: Int = 0, dropped: Int = 0, rejected: Int = 0, retries: Int = 0) {
            self.sent = sent
            self.dropped = dropped
            self.rejected = rejected
            self.retries = retries
        }
    }

    private struct State {
        var queue: [TimingEvent] = []
        var statistics = Statistics()
        var busy = false
        var closing = false
        var rung = false
        var bell: CheckedContinuation<Void, Never>?
        var loop: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }

    /// The process-wide sender, configured from `PERFGATE_URL` and `PERFGATE_TOKEN`.
    public static let shared = EventSender()

    /// The API the batches are posted to.
    public let api: PerfgateAPI
    /// The bounds and pace.
    public let configuration: Configuration
    private let state = Mutex(State())

    /// A sender posting to `api`.
    public init(api: PerfgateAPI = PerfgateAPI(), configuration: Configuration = Configuration()) {
        self.api = api
        self.configuration = configuration
        let loop = Task { await self.run() }
        let interval = configuration.flushInterval
        let timer = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self else { return }
                self.ring()
            }
        }
        state.withLock {
            $0.loop = loop
            $0.timer = timer
        }
    }

    /// Queues an event; false, and counted as dropped, when the queue is full or shut down.
    @discardableResult
    public func submit(_ event: TimingEvent) -> Bool {
        let (accepted, full) = state.withLock { state -> (Bool, Bool) in
            guard !state.closing, state.queue.count < configuration.maxQueue else {
                state.statistics.dropped += 1
                return (false, false)
            }
            state.queue.append(event)
            return (true, state.queue.count == configuration.batchSize)
        }
        if full { ring() }
        return accepted
    }

    /// What the sender has done so far.
    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Waits until everything queued has been sent or given up, at most `timeout`; true when in time.
    @discardableResult
    public func flush(timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.queue.isEmpty && !$0.busy }) { return true }
            ring()
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// Sends what is queued (for at most `shutdownTimeout`) and stops; later events are dropped.
    public func shutdown() async {
        let (loop, timer) = state.withLock { state in
            state.closing = true
            return (state.loop, state.timer)
        }
        timer?.cancel()
        ring()
        guard let loop else { return }
        // A call to an unreachable perfgate may itself take up to the API timeout: past the
        // shutdown timeout the loop is cancelled, and what it still held is counted as dropped.
        let grace = configuration.shutdownTimeout + .milliseconds(500)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await loop.value }
            group.addTask {
                try? await Task.sleep(for: grace)
                loop.cancel()
            }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: The background task

    private func ring() {
        let bell = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.bell = nil }
            if state.bell == nil { state.rung = true }
            return state.bell
        }
        bell?.resume()
    }

    private func waitForBell() async {
        await withCheckedContinuation { continuation in
            let ringing = state.withLock { state -> Bool in
                if state.rung {
                    state.rung = false
                    return true
                }
                state.bell = continuation
                return false
            }
            if ringing { continuation.resume() }
        }
    }

    private func run() async {
        while true {
            await waitForBell()
            let closing = state.withLock { $0.closing }
            let deadline = closing ? ContinuousClock.now + configuration.shutdownTimeout : nil
            while let batch = take() {
                await deliver(batch, deadline: deadline)
            }
            if closing || Task.isCancelled {
                state.withLock { state in
                    state.statistics.dropped += state.queue.count
                    state.queue.removeAll()
                    state.busy = false
                }
                return
            }
        }
    }

    private func take() -> [TimingEvent]? {
        state.withLock { state in
            guard !state.queue.isEmpty else {
                state.busy = false
                return nil
            }
            state.busy = true
            let count = min(configuration.batchSize, state.queue.count)
            defer { state.queue.removeFirst(count) }
            return Array(state.queue.prefix(count))
        }
    }

    private func deliver(_ batch: [TimingEvent], deadline: ContinuousClock.Instant?) async {
        let key = UUID().uuidString
        var backoff = Duration.milliseconds(500)
        var deadline = deadline
        while true {
            do {
                _ = try await api.post(batch, idempotencyKey: key)
                state.withLock { $0.statistics.sent += batch.count }
                return
            } catch let error as PerfgateError where !error.isTransient {
                state.withLock { $0.statistics.rejected += batch.count }
                return
            } catch {
                if deadline == nil, state.withLock({ $0.closing }) { deadline = ContinuousClock.now + configuration.shutdownTimeout }
                if Task.isCancelled || deadline.map({ ContinuousClock.now + backoff > $0 }) == true {
                    state.withLock { $0.statistics.dropped += batch.count }
                    return
                }
                state.withLock { $0.statistics.retries += 1 }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }
}
