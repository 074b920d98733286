import PerfgateCore
import Synchronization

/// How many spans each trace keeps in the waiting room, as the writer last left it. The traces
/// route sizes its commits by what each trace will assemble, stored spans included, not only by
/// what the export sends: 240 roots of traces holding 4,000 waiting spans each were one commit.
final class WaitingIndex: Sendable {
    private let spans = Mutex<[TraceID: Int]>([:])

    init(_ initial: [TraceID: Int] = [:]) {
        spans.withLock { $0 = initial }
    }

    /// Records what each of `changes` holds now; 0 takes a trace out.
    func update(_ changes: some Sequence<(TraceID, Int)>) {
        spans.withLock { spans in
            for (trace, count) in changes { spans[trace] = count == 0 ? nil : count }
        }
    }

    /// The spans waiting for each of `traces` that has any.
    func spans(of traces: some Sequence<TraceID>) -> [TraceID: Int] {
        spans.withLock { spans in
            var found: [TraceID: Int] = [:]
            for trace in traces { if let count = spans[trace] { found[trace] = count } }
            return found
        }
    }
}
