/// Exponential buckets being summed: a dense run of counts from one index on, so that adding an
/// observation or a stored row is an array index, not a search and an insert. Sums many rows or
/// observations, then becomes sparse `ExponentialBuckets`.
package struct ExponentialSpan: Sendable {
    private var zeroCount: UInt64 = 0
    /// The index of `counts[0]`.
    private var offset: Int32 = 0
    private var counts: [UInt64] = []
    /// The lowest and highest index counted, so that reading the span scans only those.
    private var low = Int32.max
    private var high = Int32.min
    private var isComplete = true

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

    /// Records one observation.
    @inline(__always)
    package mutating func observe(nanoseconds: Int64, indexer: ExponentialBuckets.Indexer) {
        if nanoseconds > 0 {
            add(1, at: indexer.index(nanoseconds: nanoseconds))
        } else {
            zeroCount &+= 1
        }
    }

    /// Adds observations of exactly zero.
    package mutating func addZeros(_ count: UInt64) {
        zeroCount &+= count
    }

    /// Marks the sum as missing observations that were never recorded at this resolution.
    package mutating func markIncomplete() {
        isComplete = false
    }

    /// Adds sparse buckets.
    package mutating func add(_ buckets: ExponentialBuckets) {
        if !buckets.isComplete { isComplete = false }
        zeroCount &+= buckets.zeroCount
        for (index, count) in zip(buckets.indices, buckets.counts) { add(count, at: index) }
    }

    /// What was summed, sparse.
    package var buckets: ExponentialBuckets {
        guard low <= high else { return ExponentialBuckets(zeroCount: zeroCount, indices: [], counts: [], isComplete: isComplete) }
        let used = counts[Int(low - offset)...Int(high - offset)]
        let nonZero = used.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        var indices: [Int32] = []
        var kept: [UInt64] = []
        indices.reserveCapacity(nonZero)
        kept.reserveCapacity(nonZero)
        for (position, count) in zip(used.indices, used) where count > 0 {
            indices.append(offset + Int32(position))
            kept.append(count)
        }
        return ExponentialBuckets(zeroCount: zeroCount, indices: indices, counts: kept, isComplete: isComplete)
    }
}
