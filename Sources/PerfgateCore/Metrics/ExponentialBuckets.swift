#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Observations counted in exponential buckets: the scheme Prometheus native histograms and
/// OpenTelemetry exponential histograms share, at schema 6.
///
/// Bucket `i` holds values in `(2^((i-1)/64), 2^(i/64)]` seconds, so neighbouring bounds differ
/// by a factor of 2^(1/64) ≈ 1.0109. Any estimate inside the bucket that holds a quantile's rank
/// is within 1.09% of the observation at that rank: the 2% perfgate promises, with room. Schema 5
/// (factor 1.0219) could be 2.19% off at worst. Values of exactly zero are counted apart (the zero
/// bucket, threshold 0); every other duration perfgate accepts, 1 ns to 86,400 s, falls in indices
/// -1,913 to 1,050, so no value is out of range.
///
/// Counts are exact integers and only ever added, so merging minutes, restarting and pruning
/// stay exact. Buckets are kept sparse: indices strictly increasing, every count above zero.
package struct ExponentialBuckets: Equatable, Sendable {
    /// The resolution: bounds grow by 2^(2^-schema).
    package static let schema: Int32 = 6
    /// Bounds per power of two.
    static let bucketsPerOctave = 1 << Int(schema)
    /// The indices stored buckets may hold: 2^-32 s to 2^32 s, wider than any sum of accepted
    /// durations (-1,913 to 1,050 for one). A stored index outside is damage, refused when read,
    /// so that no sum of indices overflows and no dense run of them is larger than 32 KiB.
    package static let storedIndices: ClosedRange<Int32> = -2048...2048

    /// Observations of exactly zero.
    package private(set) var zeroCount: UInt64 = 0
    /// Indices of the buckets holding something, increasing.
    package private(set) var indices: [Int32] = []
    /// Their counts, each above zero.
    package private(set) var counts: [UInt64] = []
    /// False when some observations counted alongside these were not recorded here (they were
    /// stored before perfgate kept exponential buckets): then only the classic buckets are whole.
    package private(set) var isComplete = true

    /// No observations.
    package init() {}

    /// Buckets from their parts; `indices` must increase and every count be above zero.
    package init(zeroCount: UInt64, indices: [Int32], counts: [UInt64], isComplete: Bool = true) {
        precondition(indices.count == counts.count, "a count per index")
        self.zeroCount = zeroCount
        self.indices = indices
        self.counts = counts
        self.isComplete = isComplete
    }

    /// Sparse buckets from dense counts: `cells[k]` is the count of bucket `lowest + k`. The
    /// one read-out of every dense sum (ingest's tally, trend windows, the store's log fold).
    package init<Count: FixedWidthInteger & UnsignedInteger>(
        zeroCount: UInt64, lowest: Int32, cells: UnsafeBufferPointer<Count>, isComplete: Bool = true
    ) {
        let nonZero = cells.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        var indices: [Int32] = []
        var counts: [UInt64] = []
        indices.reserveCapacity(nonZero)
        counts.reserveCapacity(nonZero)
        for (offset, count) in cells.enumerated() where count != 0 {
            indices.append(lowest + Int32(offset))
            counts.append(UInt64(count))
        }
        self.init(zeroCount: zeroCount, indices: indices, counts: counts, isComplete: isComplete)
    }

    /// Buckets standing for observations that were never recorded at this resolution.
    package static var unrecorded: ExponentialBuckets {
        var buckets = ExponentialBuckets()
        buckets.isComplete = false
        return buckets
    }

    /// The number of observations.
    package var count: UInt64 { counts.reduce(zeroCount, &+) }

    /// True when nothing was observed.
    package var isEmpty: Bool { zeroCount == 0 && indices.isEmpty }

    // MARK: Bucket arithmetic

    /// `2^(j/64)` for j in 0...64: the bounds of the buckets of one octave, as multiples of its
    /// start. Each is the double client_golang's table holds (times two, which is exact), so
    /// perfgate and Go clients put every value in the same bucket.
    private static let octaveBounds: [Double] = (0...bucketsPerOctave).map { exp2(Double($0) / Double(bucketsPerOctave)) }

    /// The 52 fraction bits of each bound's significand (2^(k/64) in [1, 2)), for k in 0..<64.
    private static let boundFractions: [UInt64] = octaveBounds.dropLast().map { $0.significandBitPattern }

    /// For each of 4,096 equal cells of the significand's range [1, 2), the first bucket of the
    /// octave whose bound reaches the cell's start. A bucket is at least 1.08% of the octave wide
    /// and a cell 0.024%, so a cell meets at most one bound: the table and one comparison of
    /// fraction bits find the bucket a binary search over the 64 bounds would. With the search,
    /// and Double's `significand` and `exponent` (calls, not inlined), ingest spent about 250
    /// instructions per observation here (callgrind over core-benchmark); now a few dozen.
    private static let cellBuckets: [UInt8] = (0..<4096).map { cell in
        let start = 1 + Double(cell) / 4096
        return UInt8(octaveBounds.firstIndex { $0 >= start }!)
    }

    /// The bucket of a positive duration in nanoseconds.
    package static func index(nanoseconds: Int64) -> Int32 {
        withIndexer { $0.index(nanoseconds: nanoseconds) }
    }

    /// The bucket of a positive, normal value: the smallest `i` with `value <= 2^(i/64)`.
    package static func index(seconds value: Double) -> Int32 {
        withIndexer { $0.index(seconds: value) }
    }

    /// Runs `body` with an indexer over the tables, for loops that index many values: the tables
    /// are reached once, not once per value (each access to a static is a lazy-initialisation check).
    @inline(__always)
    package static func withIndexer<T>(_ body: (Indexer) throws -> T) rethrows -> T {
        try cellBuckets.withUnsafeBufferPointer { cells in
            try boundFractions.withUnsafeBufferPointer { fractions in
                try body(Indexer(cells: cells, fractions: fractions))
            }
        }
    }

    /// Finds buckets with the tables in hand.
    package struct Indexer {
        let cells: UnsafeBufferPointer<UInt8>
        let fractions: UnsafeBufferPointer<UInt64>

        /// The bucket of a positive duration in nanoseconds.
        @inline(__always)
        package func index(nanoseconds: Int64) -> Int32 {
            index(seconds: Double(nanoseconds) / 1e9)
        }

        /// The bucket of a positive, normal value: the smallest `i` with `value <= 2^(i/64)`.
        @inline(__always)
        package func index(seconds value: Double) -> Int32 {
            // value = 1.fraction * 2^exponent, read from the bits.
            let bits = value.bitPattern
            let exponent = Int((bits >> 52) & 0x7FF) - 1023
            let fraction = bits & 0x000F_FFFF_FFFF_FFFF
            var bucket = Int(cells[Int(fraction >> 40)])
            if bucket < ExponentialBuckets.bucketsPerOctave && fraction > fractions[bucket] { bucket += 1 }
            return Int32(bucket + exponent * ExponentialBuckets.bucketsPerOctave)
        }
    }

    /// The upper bound of bucket `index`, in seconds.
    package static func upperBound(_ index: Int32) -> Double {
        exp2(Double(index) / Double(bucketsPerOctave))
    }

    /// The lower bound of bucket `index` (exclusive), in seconds.
    package static func lowerBound(_ index: Int32) -> Double {
        upperBound(index - 1)
    }

    // MARK: Counting

    /// Records one observation.
    package mutating func observe(nanoseconds: Int64) {
        guard nanoseconds > 0 else {
            zeroCount &+= 1
            return
        }
        add(1, at: Self.index(nanoseconds: nanoseconds))
    }

    /// Adds `count` observations to bucket `index`.
    mutating func add(_ count: UInt64, at index: Int32) {
        guard count > 0 else { return }
        var low = 0
        var high = indices.count
        while low < high {
            let middle = (low + high) / 2
            if indices[middle] < index { low = middle + 1 } else { high = middle }
        }
        if low < indices.count && indices[low] == index {
            counts[low] &+= count
        } else {
            indices.insert(index, at: low)
            counts.insert(count, at: low)
        }
    }

    /// Adds another set of buckets; the result is complete only when both were.
    package mutating func add(_ other: ExponentialBuckets) {
        isComplete = isComplete && other.isComplete
        zeroCount &+= other.zeroCount
        guard !other.indices.isEmpty else { return }
        guard !indices.isEmpty else {
            indices = other.indices
            counts = other.counts
            return
        }
        // Long-lived totals usually hold every bucket a new minute touches: add in place then.
        if addInPlace(other) { return }
        var mergedIndices: [Int32] = []
        var mergedCounts: [UInt64] = []
        mergedIndices.reserveCapacity(indices.count + other.indices.count)
        mergedCounts.reserveCapacity(indices.count + other.indices.count)
        var left = 0
        var right = 0
        while left < indices.count || right < other.indices.count {
            if right == other.indices.count || (left < indices.count && indices[left] < other.indices[right]) {
                mergedIndices.append(indices[left])
                mergedCounts.append(counts[left])
                left += 1
            } else if left == indices.count || other.indices[right] < indices[left] {
                mergedIndices.append(other.indices[right])
                mergedCounts.append(other.counts[right])
                right += 1
            } else {
                mergedIndices.append(indices[left])
                mergedCounts.append(counts[left] &+ other.counts[right])
                left += 1
                right += 1
            }
        }
        indices = mergedIndices
        counts = mergedCounts
    }

    /// Adds `other` in place when every one of its buckets is among these; false (and nothing
    /// changed) when one is not. Each bucket is found by a binary search of the rest, since
    /// `other` (a commit's minute) is usually far shorter than these (a series' total).
    private mutating func addInPlace(_ other: ExponentialBuckets) -> Bool {
        guard other.indices.count <= indices.count else { return false }
        return indices.withUnsafeBufferPointer { indices in
            counts.withUnsafeMutableBufferPointer { counts in
                other.indices.withUnsafeBufferPointer { wanted in
                    other.counts.withUnsafeBufferPointer { added in
                        var position = 0
                        for k in 0..<wanted.count {
                            var high = indices.count
                            while position < high {
                                let middle = (position + high) / 2
                                if indices[middle] < wanted[k] { position = middle + 1 } else { high = middle }
                            }
                            guard position < indices.count, indices[position] == wanted[k] else {
                                // Not all there: take back what was added, and merge instead.
                                var undo = 0
                                for j in 0..<k {
                                    while indices[undo] != wanted[j] { undo += 1 }
                                    counts[undo] &-= added[j]
                                }
                                return false
                            }
                            counts[position] &+= added[k]
                        }
                        return true
                    }
                }
            }
        }
    }

    // MARK: Quantiles

    /// The `q` quantile in seconds: the bucket holding rank `q × count`, as `histogram_quantile`
    /// finds it in a native histogram, and within it log-linear interpolation (values taken as
    /// spread evenly in the logarithm across the bucket, which suits exponential buckets). NaN
    /// with no observations, or when the buckets are incomplete.
    ///
    /// Whatever the distribution, the answer lies in the bucket that holds the observation of rank
    /// ⌈q × count⌉, so it is within 1.09% of that observation.
    package func quantile(_ q: Double) -> Double {
        if q.isNaN { return .nan }
        if q < 0 { return -.infinity }
        if q > 1 { return .infinity }
        let total = count
        guard total > 0, isComplete else { return .nan }
        let rank = q * Double(total)
        var below = Double(zeroCount)
        if zeroCount > 0 && rank <= below { return 0 }
        for (position, index) in indices.enumerated() {
            let inBucket = Double(counts[position])
            if below + inBucket >= rank || position == indices.count - 1 {
                let fraction = min(max((rank - below) / inBucket, 0), 1)
                // exp2((i - 1 + fraction) / 64): log-linear across the bucket.
                return exp2((Double(index) - 1 + fraction) / Double(Self.bucketsPerOctave))
            }
            below += inBucket
        }
        return 0
    }
}
