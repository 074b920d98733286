/// Exponential buckets being summed: a dense run of counts from one index on, so that adding an
/// observation or a stored row is an array index, not a search and an insert. Sums many rows or
/// observations, then becomes sparse `ExponentialBuckets`.
package struct ExponentialSpan: Sendable {
    private var zeroCount: UInt64 = 0
    /// The index of `counts[0]`.
    private var offset: Int32 = 0
    private var counts: [UInt64] = []
    private var isComplete = true

    /// Nothing summed yet.
    package init() {}

    /// Adds `count` observations to bucket `index`.
    @inline(__always)
    package mutating func add(_ count: UInt64, at index: Int32) {
        if counts.isEmpty {
            offset = index
            counts = [count]
            return
        }
        if index < offset {
            // Grow downwards with room to spare, so a run of ever smaller values costs little.
            let needed = Int(offset - index)
            let grow = max(needed, min(counts.count, 256))
            counts.insert(contentsOf: repeatElement(0, count: grow), at: 0)
            offset -= Int32(grow)
        } else if Int(index - offset) >= counts.count {
            counts.append(contentsOf: repeatElement(0, count: Int(index - offset) - counts.count + 1))
        }
        counts[Int(index - offset)] &+= count
    }

    /// Records one observation.
    @inline(__always)
    package mutating func observe(nanoseconds: Int64) {
        if nanoseconds > 0 {
            add(1, at: ExponentialBuckets.index(nanoseconds: nanoseconds))
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
        var indices: [Int32] = []
        var kept: [UInt64] = []
        for (position, count) in counts.enumerated() where count > 0 {
            indices.append(offset + Int32(position))
            kept.append(count)
        }
        return ExponentialBuckets(zeroCount: zeroCount, indices: indices, counts: kept, isComplete: isComplete)
    }
}
