/// Exponential buckets being summed as a dense run of counts from one index on, so that adding a
/// bucket is an array index, not a search and an insert: the store folds many commits' buckets of
/// one series-minute this way, then makes them sparse `ExponentialBuckets` once.
package struct ExponentialSpan: Sendable {
    private var zeroCount: UInt64 = 0
    /// The index of `counts[0]`.
    private var offset: Int32 = 0
    private var counts: [UInt64] = []
    /// The lowest and highest index counted, so that reading the span scans only those.
    private var low = Int32.max
    private var high = Int32.min

    /// Nothing summed yet.
    package init() {}

    /// Adds `count` observations to bucket `index`.
    @inline(__always)
    package mutating func add(_ count: UInt64, at index: Int32) {
        if counts.isEmpty {
            // Room for a few octaves' eighths either side: most sums never grow.
            offset = index - 32
            counts = Array(repeating: 0, count: 64)
        } else if index < offset {
            // Grow by at least the size so far, so growing costs amortised constant time.
            let grow = max(Int(offset - index), counts.count)
            counts.insert(contentsOf: repeatElement(0, count: grow), at: 0)
            offset -= Int32(grow)
        } else if Int(index - offset) >= counts.count {
            counts.append(contentsOf: repeatElement(0, count: max(Int(index - offset) - counts.count + 1, counts.count)))
        }
        counts[Int(index - offset)] &+= count
        low = min(low, index)
        high = max(high, index)
    }

    /// Adds encoded buckets (`ExponentialEncoding`); false, adding nothing, when they are damaged.
    package mutating func add(encoded raw: UnsafeRawBufferPointer) -> Bool {
        // Checked whole before any bucket is added: damage found half-way would leave half a row.
        guard ExponentialEncoding.read(raw, zeros: { _ in }, bucket: { _, _ in }) else { return false }
        var zeros: UInt64 = 0
        _ = ExponentialEncoding.read(raw, zeros: { zeros = $0 }) { index, count in add(count, at: index) }
        zeroCount &+= zeros
        return true
    }

    /// What was summed, sparse.
    package var buckets: ExponentialBuckets {
        guard low <= high else { return ExponentialBuckets(zeroCount: zeroCount, indices: [], counts: []) }
        return counts.withUnsafeBufferPointer { counts in
            ExponentialBuckets(zeroCount: zeroCount, lowest: low, cells: UnsafeBufferPointer(rebasing: counts[Int(low - offset)...Int(high - offset)]))
        }
    }
}
