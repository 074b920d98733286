import PerfgateCore
import Synchronization

/// The single write path: requests queue their deltas, one drain task commits whatever has
/// queued in one transaction (group commit), and each request resumes once its data is durable.
///
/// Modelled on the Pushgateway's single writer loop. While a commit is in the store, the next
/// requests queue up and go into the following one; the store decides where its blocking work
/// runs, so the drain task never holds a cooperative thread while the disk syncs.
final class WriteQueue: Sendable {
    private enum Job: Sendable {
        case ingest(PendingWrite, CheckedContinuation<CommitReceipt, any Error>)
        case prune(Minute, CheckedContinuation<PruneReport, any Error>)
        case delete(SeriesSelector, CheckedContinuation<[SeriesKey], any Error>)
        case expire(Minute, CheckedContinuation<[SeriesKey], any Error>)
        case barrier(CheckedContinuation<Void, Never>)
    }

    private struct State {
        var jobs: [Job] = []
        var queuedEvents = 0
        var draining = false
        var closed = false
        var lastFailure: (at: ContinuousClock.Instant, message: String)?
    }

    private let state = Mutex(State())
    private let committer: Committer
    /// Most events that may wait at once.
    let capacity: Int

    init(committer: Committer, capacity: Int) {
        self.committer = committer
        self.capacity = capacity
    }

    /// Queues a delta and returns once it is committed, or throws and applies nothing. With a
    /// claim, the request's answer is kept with its counts, or an earlier answer is returned.
    func submit(_ delta: RollupDelta, claim: IdempotencyClaim? = nil) async throws -> CommitReceipt {
        try await withCheckedThrowingContinuation { continuation in
            // One critical section per request: check the bounds, queue, and learn whether to wake the writer.
            let outcome = state.withLock { state -> Result<Bool, WriteError> in
                if state.closed { return .failure(.shuttingDown) }
                if state.queuedEvents + delta.eventCount > capacity {
                    return .failure(.overloaded(queued: state.queuedEvents, capacity: capacity))
                }
                state.queuedEvents += delta.eventCount
                return .success(Self.append(.ingest(PendingWrite(delta: delta, claim: claim), continuation), to: &state))
            }
            switch outcome {
            case .failure(let refusal): continuation.resume(throwing: refusal)
            case .success(let wakeWriter): if wakeWriter { startDraining() }
            }
        }
    }

    /// Folds minutes before `cutoff` into series bases, in turn with the commits.
    func prune(before cutoff: Minute) async throws -> PruneReport {
        try await withCheckedThrowingContinuation { enqueue(.prune(cutoff, $0)) }
    }

    /// Deletes the series `selector` matches, in turn with the commits; returns their keys.
    func delete(matching selector: SeriesSelector) async throws -> [SeriesKey] {
        try await withCheckedThrowingContinuation { enqueue(.delete(selector, $0)) }
    }

    /// Deletes the series not written since before `cutoff`; returns their keys.
    func expire(idleBefore cutoff: Minute) async throws -> [SeriesKey] {
        try await withCheckedThrowingContinuation { enqueue(.expire(cutoff, $0)) }
    }

    /// Refuses new writes and returns once everything queued before has been written.
    func shutdown() async {
        await withCheckedContinuation { continuation in
            state.withLock { $0.closed = true }
            enqueue(.barrier(continuation))
        }
    }

    /// Events waiting to be committed.
    var queuedEvents: Int { state.withLock { $0.queuedEvents } }

    /// Why the write path cannot take traffic now, or nil when it can.
    func unreadyReason() -> String? {
        state.withLock { state in
            if state.closed { return "shutting down" }
            if state.queuedEvents * 10 >= capacity * 9 {
                return "the write queue holds \(state.queuedEvents) events, near its limit of \(capacity)"
            }
            if let failure = state.lastFailure, failure.at.duration(to: .now) < .seconds(10) {
                return "the last commit failed: \(failure.message)"
            }
            return nil
        }
    }

    private func enqueue(_ job: Job) {
        if state.withLock({ Self.append(job, to: &$0) }) { startDraining() }
    }

    /// Queues a job; true when the writer is idle and must be woken.
    private static func append(_ job: Job, to state: inout State) -> Bool {
        state.jobs.append(job)
        defer { state.draining = true }
        return !state.draining
    }

    private func startDraining() {
        Task { await self.drain() }
    }

    // One drain task at a time (`draining`): take everything queued, write it, resume the
    // waiters, repeat until the queue is empty.
    private func drain() async {
        while true {
            let jobs = state.withLock { state -> [Job] in
                if state.jobs.isEmpty { state.draining = false }
                defer { state.jobs = [] }
                return state.jobs
            }
            guard !jobs.isEmpty else { return }
            await process(jobs)
        }
    }

    private func process(_ jobs: [Job]) async {
        var writes: [PendingWrite] = []
        var waiters: [CheckedContinuation<CommitReceipt, any Error>] = []
        for case .ingest(let write, let continuation) in jobs {
            writes.append(write)
            waiters.append(continuation)
        }
        if !writes.isEmpty {
            let result = await committer.commit(writes)
            let events = writes.reduce(0) { $0 + $1.delta.eventCount }
            state.withLock { state in
                state.queuedEvents -= events
                if case .failure(.storeFailed(let message)) = result { state.lastFailure = (.now, message) }
            }
            switch result {
            case .success(let receipts):
                for (waiter, receipt) in zip(waiters, receipts) { waiter.resume(returning: receipt) }
            case .failure(let error):
                for waiter in waiters { waiter.resume(throwing: error) }
            }
        }
        for job in jobs {
            switch job {
            case .ingest:
                continue
            case .prune(let cutoff, let continuation):
                continuation.resume(with: await committer.prune(before: cutoff).mapError { $0 as any Error })
            case .delete(let selector, let continuation):
                continuation.resume(with: await committer.delete(matching: selector).mapError { $0 as any Error })
            case .expire(let cutoff, let continuation):
                continuation.resume(with: await committer.expire(idleBefore: cutoff).mapError { $0 as any Error })
            case .barrier(let continuation):
                continuation.resume()
            }
        }
    }
}
