/// What a histogram has counted: observations per bucket of its layout (the seed's classic
/// buckets), the same observations in fine exponential buckets, and their exact total.
///
/// Buckets are stored non-cumulative (as client_golang does) and summed at write time.
package struct HistogramCounts: Equatable, Sendable {
    /// Observations per bucket, `+Inf` last; not cumulative.
    package var buckets: [UInt64]
    /// The same observations at high resolution, for quantiles that see changes inside a bucket.
    package var exponential: ExponentialBuckets
    /// The exact sum of observed values, in nanoseconds.
    package var sumNanoseconds: Int128

    /// Empty counts for `bucketCount` buckets (including `+Inf`).
    package init(bucketCount: Int) {
        buckets = Array(repeating: 0, count: bucketCount)
        exponential = ExponentialBuckets()
        sumNanoseconds = 0
    }

    /// Counts from their parts; `exponential` is `.unrecorded` for counts kept before perfgate
    /// recorded exponential buckets.
    package init(buckets: [UInt64], exponential: ExponentialBuckets, sumNanoseconds: Int128) {
        self.buckets = buckets
        self.exponential = exponential
        self.sumNanoseconds = sumNanoseconds
    }

    /// The number of observations.
    package var count: UInt64 {
        buckets.reduce(0, &+)
    }

    /// Records one observation that falls in `bucket`.
    @inline(__always)
    package mutating func observe(nanoseconds: Int64, bucket: Int) {
        buckets[bucket] &+= 1
        exponential.observe(nanoseconds: nanoseconds)
        sumNanoseconds += Int128(nanoseconds)
    }

    /// Records one observation already placed: in classic bucket `bucket` and exponential bucket
    /// `exponentialIndex` (nil for a zero duration).
    @inline(__always)
    package mutating func observe(_ observation: RollupObservation) {
        buckets[Int(observation.bucket)] &+= 1
        if let index = observation.exponentialIndex { exponential.add(1, at: index) } else { exponential.observe(nanoseconds: 0) }
        sumNanoseconds += Int128(observation.nanoseconds)
    }

    /// Adds another set of counts of the same layout.
    package mutating func add(_ other: HistogramCounts) {
        precondition(buckets.count == other.buckets.count, "counts of different layouts")
        for index in buckets.indices {
            buckets[index] &+= other.buckets[index]
        }
        exponential.add(other.exponential)
        sumNanoseconds += other.sumNanoseconds
    }

    /// The cumulative counts, as the exposition and `histogram_quantile` see them.
    package var cumulative: [UInt64] {
        var running: UInt64 = 0
        return buckets.map {
            running &+= $0
            return running
        }
    }
}
