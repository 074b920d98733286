import Synchronization

/// The bytes of request bodies held in memory at once, across every connection, against
/// `--max-body-memory`.
///
/// Each request is bounded on its own (`--max-body-size`, `--max-inflated-body-size`), but a
/// thousand connections each sending an 8 MiB body, or a few gzipped ones inflating to 64 MiB
/// each, would hold gigabytes together. A body of known length larger than `smallBodyBytes`
/// takes its length from the budget when its head arrives, and is answered 503 before it is read
/// when the budget cannot hold it; a chunked body takes its chunks as they arrive; inflating
/// takes each piece it produces. Smaller bodies are not counted: the connection cap bounds them
/// (1,000 x 64 KiB), and one-event requests pay no shared counter.
final class BodyBudget: Sendable {
    /// Bodies up to this length are bounded by the connection cap instead.
    static let smallBodyBytes = 64 * 1024

    /// Most bytes held at once.
    let capacity: Int
    private let held = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Bytes held now.
    var inUse: Int { held.load(ordering: .relaxed) }

    /// Takes `bytes` if they fit; false, taking nothing, when they do not.
    func take(_ bytes: Int) -> Bool {
        var current = held.load(ordering: .relaxed)
        while true {
            guard bytes <= capacity - current else { return false }
            let (exchanged, original) = held.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Takes `bytes` whether they fit or not; true when they did.
    func force(_ bytes: Int) -> Bool {
        held.add(bytes, ordering: .relaxed).newValue <= capacity
    }

    /// Gives back bytes taken earlier.
    func give(_ bytes: Int) {
        if bytes > 0 { held.subtract(bytes, ordering: .relaxed) }
    }

    /// The 503 a request gets when its body does not fit.
    func refusal() -> APIError {
        .unavailable(
            "perfgate holds its limit of \(capacity) bytes of request bodies in memory (--max-body-memory); nothing of this request was read or applied, retry shortly"
        )
    }
}
