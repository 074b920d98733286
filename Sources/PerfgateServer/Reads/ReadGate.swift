import PerfgateCore
import Synchronization

/// Admits the requests that read the store (trends, the status page): a few at once, a bounded
/// number waiting in turn, and past that a refusal that says when to come back.
///
/// A read of the whole retention takes the store's readers for a second or more; without a bound,
/// a read token could queue work faster than it is done, each waiting read holding its connection
/// and the memory of its answer to come.
final class ReadGate: Sendable {
    /// What the gate has done since start, for `/metrics`.
    struct Figures: Sendable {
        var running: Int
        var waiting: Int
        var refused: UInt64
        var cancelled: UInt64
    }

    private struct State {
        var running = 0
        var waiting: [(ticket: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextTicket: UInt64 = 0
        var refused: UInt64 = 0
        var cancelled: UInt64 = 0
        /// Recent reads' time, smoothed: what a refused client is told to wait, per read ahead of it.
        var averageNanoseconds: Double = 0
    }

    /// Reads run at once: the SQLite store's reader connections.
    let concurrent: Int
    /// Reads waiting for a turn before the next is refused.
    let maxWaiting: Int
    private let state = Mutex(State())

    init(concurrent: Int, maxWaiting: Int) {
        precondition(concurrent >= 1 && maxWaiting >= 0)
        self.concurrent = concurrent
        self.maxWaiting = maxWaiting
    }

    var figures: Figures {
        state.withLock { Figures(running: $0.running, waiting: $0.waiting.count, refused: $0.refused, cancelled: $0.cancelled) }
    }

    /// Runs `read` in its turn; throws a 503 with `Retry-After` when the queue is full. A read
    /// whose task is cancelled (perfgate stopping) leaves the queue, or stops in the store.
    func run<T: Sendable>(_ what: String, _ read: () async throws -> T) async throws -> T {
        do {
            try await enter(what)
            let start = ContinuousClock.now
            do {
                let value = try await read()
                leave(after: start.duration(to: .now))
                return value
            } catch {
                // A read called off says nothing of how long reads take.
                leave(after: nil)
                throw error
            }
        } catch let error as CancellationError {
            state.withLock { $0.cancelled += 1 }
            throw error
        }
    }

    private enum Admission {
        case now
        case wait(UInt64)
        case refused(retryAfterSeconds: Int)
    }

    private func enter(_ what: String) async throws {
        let admission: Admission = state.withLock { state in
            if state.running < concurrent && state.waiting.isEmpty {
                state.running += 1
                return .now
            }
            guard state.waiting.count < maxWaiting else {
                state.refused += 1
                // Every read ahead, spread over the readers, at the recent pace; a second at least.
                let ahead = Double(state.waiting.count + state.running) / Double(concurrent)
                let seconds = (ahead * state.averageNanoseconds / 1e9).rounded(.up)
                return .refused(retryAfterSeconds: Int(min(max(seconds, 1), 60)))
            }
            state.nextTicket += 1
            return .wait(state.nextTicket)
        }
        switch admission {
        case .now:
            return
        case .refused(let seconds):
            throw APIError.unavailable(
                "\(what) was not started: \(concurrent) reads of the store run and \(maxWaiting) wait already (--max-queued-reads); retry in \(seconds) s",
                retryAfterSeconds: seconds
            )
        case .wait(let ticket):
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let cancelledAlready = state.withLock { state in
                        if Task.isCancelled { return true }
                        state.waiting.append((ticket, continuation))
                        return false
                    }
                    if cancelledAlready { continuation.resume(throwing: CancellationError()) }
                }
            } onCancel: {
                let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                    guard let position = state.waiting.firstIndex(where: { $0.ticket == ticket }) else { return nil }
                    return state.waiting.remove(at: position).continuation
                }
                continuation?.resume(throwing: CancellationError())
            }
        }
    }

    /// Hands the turn to the next waiting read, or frees it; `duration` is the read's, when it ran
    /// to its end.
    private func leave(after duration: Duration?) {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if let (seconds, attoseconds) = duration?.components {
                let nanoseconds = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
                state.averageNanoseconds = state.averageNanoseconds == 0 ? nanoseconds : 0.8 * state.averageNanoseconds + 0.2 * nanoseconds
            }
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            // The turn passes on: `running` stays as it is.
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }
}
