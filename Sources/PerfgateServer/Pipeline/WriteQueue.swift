import NIOCore
import PerfgateCore
import Synchronization

/// The single write path: requests queue their deltas, one writer commits whatever has queued
/// in one transaction (group commit), and each request resumes once its data is durable.
///
/// Modelled on the Pushgateway's single writer loop. A request that finds the writer idle is the
/// writer for its own commit (no hand-off to another task on an idle server); requests arriving
/// meanwhile queue up, and one drain task commits them together once it is done. The store
/// decides where its blocking work runs, so no writer holds a cooperative thread during fsync.
final class WriteQueue: Sendable {
    /// Called once a write is committed or refused: from the writer's context, or on the event
    /// loop the write was submitted with.
    typealias Completion = @Sendable (Result<CommitReceipt, WriteError>) -> Void

    /// Who hears of a write's outcome: a completion called from the writer's context, or one
    /// called on an event loop (the loops' waiters of one commit are woken once per loop).
    private enum Waiter: Sendable {
        case direct(Completion)
        case onLoop(any EventLoop, Completion)
    }

    private enum Job: Sendable {
        case ingest(PendingWrite, Waiter)
        case prune(Minute, CheckedContinuation<PruneReport, any Error>)
        case dropWaitingSpans(Int64, CheckedContinuation<Committer.ExpiredTraces, any Error>)
        case delete(SeriesSelector, CheckedContinuation<[SeriesKey], any Error>)
        case expire(Minute, CheckedContinuation<[SeriesKey], any Error>)
        case adopt([SeriesRecord], CheckedContinuation<Void, Never>)
        case settle(CheckedContinuation<Void, Never>)
        case barrier(CheckedContinuation<Void, Never>)
    }

    private struct State {
        var jobs: [Job] = []
        var queuedEvents = 0
        /// A writer is at work: a request committing itself, or the drain task.
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
        try await submit(PendingWrite(delta: delta, claim: claim))
    }

    /// The spans waiting for each of `traces` that has any, as the writer last left them.
    func waitingSpans(of traces: some Sequence<TraceID>) -> [TraceID: Int] {
        committer.waitingIndex.spans(of: traces)
    }

    /// Queues OTLP spans and returns once they are committed, as events or as spans waiting for
    /// their root; or throws and applies nothing.
    func submit(traces: TraceWrite) async throws -> CommitReceipt {
        try await submit(PendingWrite(delta: RollupDelta(), claim: nil, traces: traces))
    }

    /// Queues a delta and calls `completion` on `loop` once it is committed or refused; for a
    /// caller that is not a Swift task (the event-loop ingest path), so none is suspended for the
    /// commit. The waiters of one commit on one loop are woken together, with one hand-off.
    func submit(_ delta: RollupDelta, on loop: any EventLoop, completion: @escaping Completion) {
        let write = PendingWrite(delta: delta, claim: nil)
        let wakes: Bool
        do {
            wakes = try state.withLock { state throws(WriteError) -> Bool in
                try Self.admit(write, to: &state, capacity: capacity)
                return Self.append(.ingest(write, .onLoop(loop, completion)), to: &state)
            }
        } catch {
            // Still later, on the loop: the caller never sees its completion run inside this call.
            loop.execute { completion(.failure(error)) }
            return
        }
        if wakes { startDraining() }
    }

    private func submit(_ write: PendingWrite) async throws -> CommitReceipt {
        // Check the bounds, and take the writer's turn when it is idle (nothing is queued then).
        let leads = try state.withLock { state throws(WriteError) -> Bool in
            try Self.admit(write, to: &state, capacity: capacity)
            defer { state.draining = true }
            return !state.draining
        }
        if leads {
            let result = await commit([write])
            // Whatever queued during the commit goes to a drain task; this request answers now.
            let more = state.withLock { state -> Bool in
                if state.jobs.isEmpty { state.draining = false }
                return state.draining
            }
            if more { startDraining() }
            return try result.get()[0]
        }
        return try await withCheckedThrowingContinuation { continuation in
            let job = Job.ingest(write, .direct { continuation.resume(with: $0.mapError { $0 as any Error }) })
            if state.withLock({ Self.append(job, to: &$0) }) { startDraining() }
        }
    }

    /// Counts `write` in, or refuses it when the queue is closed or would hold too many events.
    private static func admit(_ write: PendingWrite, to state: inout State, capacity: Int) throws(WriteError) {
        if state.closed { throw .shuttingDown }
        if state.queuedEvents + write.size > capacity {
            throw .overloaded(queued: state.queuedEvents, capacity: capacity)
        }
        state.queuedEvents += write.size
    }

    /// Folds minutes before `cutoff` into series bases, in turn with the commits.
    func prune(before cutoff: Minute) async throws -> PruneReport {
        try await withCheckedThrowingContinuation { enqueue(.prune(cutoff, $0)) }
    }

    /// Gives up traces whose spans have waited since before `cutoff` (Unix seconds), one pass of
    /// them, in turn with the commits; says what went.
    func dropWaitingSpans(receivedBefore cutoff: Int64) async throws -> Committer.ExpiredTraces {
        try await withCheckedThrowingContinuation { enqueue(.dropWaitingSpans(cutoff, $0)) }
    }

    /// Deletes the series `selector` matches, in turn with the commits; returns their keys.
    func delete(matching selector: SeriesSelector) async throws -> [SeriesKey] {
        try await withCheckedThrowingContinuation { enqueue(.delete(selector, $0)) }
    }

    /// Deletes the series not written since before `cutoff`; returns their keys.
    func expire(idleBefore cutoff: Minute) async throws -> [SeriesKey] {
        try await withCheckedThrowingContinuation { enqueue(.expire(cutoff, $0)) }
    }

    /// Takes in series other replicas of a shared store created, in turn with the commits.
    func adopt(_ records: [SeriesRecord]) async {
        await withCheckedContinuation { enqueue(.adopt(records, $0)) }
    }

    /// Reads this replica's own counts back from the store if a commit's outcome was unknown, in
    /// turn with the commits (the next commit does it too).
    func settle() async {
        guard committer.unsettled else { return }
        await withCheckedContinuation { enqueue(.settle($0)) }
    }

    /// Notes that the store failed outside a commit (a shared store's database is unreachable),
    /// so that `/readyz` says so even while no request comes.
    func recordStoreFailure(_ message: String) {
        state.withLock { $0.lastFailure = (.now, message) }
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
    func unreadyReason() -> Unready? {
        state.withLock { state in
            if state.closed { return Unready(summary: "shutting down", detail: "shutting down") }
            if state.queuedEvents * 10 >= capacity * 9 {
                return Unready(
                    summary: "the write queue is near its limit",
                    detail: "the write queue holds \(state.queuedEvents) events, near its limit of \(capacity)"
                )
            }
            if let failure = state.lastFailure, failure.at.duration(to: .now) < .seconds(10) {
                return Unready(summary: "the store failed in the last 10 seconds", detail: "the store failed in the last 10 seconds: \(failure.message)")
            }
            return nil
        }
    }

    /// Why writes would not be taken now: in words that name nothing of the deployment, for anyone,
    /// and with the store's own message (paths, hosts, users), for those who may read.
    struct Unready: Sendable {
        let summary: String
        let detail: String
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
        // On the store's writer thread when it has one: the drain's commits then block that
        // thread only, with no hop to it and back per commit.
        Task(executorPreference: committer.writeExecutor) { await self.drain() }
    }

    // One writer at a time (`draining`): take everything queued, write it, resume the waiters,
    // repeat until the queue is empty.
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

    /// Commits `writes` and takes their events off the queue's count; by the writer only.
    private func commit(_ writes: [PendingWrite]) async -> Result<[CommitReceipt], WriteError> {
        let result = await committer.commit(writes)
        let events = writes.reduce(0) { $0 + $1.size }
        state.withLock { state in
            state.queuedEvents -= events
            switch result {
            case .failure(.storeFailed(let message)), .failure(.outcomeUnknown(let message)): state.lastFailure = (.now, message)
            default: break
            }
        }
        return result
    }

    private func process(_ jobs: [Job]) async {
        var writes: [PendingWrite] = []
        var waiters: [Waiter] = []
        for case .ingest(let write, let waiter) in jobs {
            writes.append(write)
            waiters.append(waiter)
        }
        if !writes.isEmpty {
            let result = await commit(writes)
            let outcomes: [Result<CommitReceipt, WriteError>] = switch result {
            case .success(let receipts): receipts.map { .success($0) }
            case .failure(let error): Array(repeating: .failure(error), count: writes.count)
            }
            Self.notify(waiters, of: outcomes)
        }
        for job in jobs {
            switch job {
            case .ingest:
                continue
            case .prune(let cutoff, let continuation):
                continuation.resume(with: await committer.prune(before: cutoff).mapError { $0 as any Error })
            case .dropWaitingSpans(let cutoff, let continuation):
                continuation.resume(with: await committer.dropWaitingSpans(receivedBefore: cutoff).mapError { $0 as any Error })
            case .delete(let selector, let continuation):
                continuation.resume(with: await committer.delete(matching: selector).mapError { $0 as any Error })
            case .expire(let cutoff, let continuation):
                continuation.resume(with: await committer.expire(idleBefore: cutoff).mapError { $0 as any Error })
            case .adopt(let records, let continuation):
                committer.adopt(records)
                continuation.resume()
            case .settle(let continuation):
                await committer.settleIfUnsure()
                continuation.resume()
            case .barrier(let continuation):
                continuation.resume()
            }
        }
    }

    /// Tells each waiter its write's outcome: direct ones here, the rest with one task per loop,
    /// so a commit of many requests wakes each loop once rather than once per request.
    private static func notify(_ waiters: [Waiter], of outcomes: [Result<CommitReceipt, WriteError>]) {
        var byLoop: [(loop: any EventLoop, calls: [(Completion, Result<CommitReceipt, WriteError>)])] = []
        for (waiter, outcome) in zip(waiters, outcomes) {
            switch waiter {
            case .direct(let completion):
                completion(outcome)
            case .onLoop(let loop, let completion):
                if let index = byLoop.firstIndex(where: { $0.loop === loop }) {
                    byLoop[index].calls.append((completion, outcome))
                } else {
                    byLoop.append((loop, [(completion, outcome)]))
                }
            }
        }
        for (loop, calls) in byLoop {
            loop.execute { for (completion, outcome) in calls { completion(outcome) } }
        }
    }
}
