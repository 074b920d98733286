/// What a histogram has counted: observations per bucket of its layout (the seed's classic
/// buckets), the same observations in fine exponential buckets, and their exact total.
///
/// Buckets are stored non-cumulative (as client_golang does) and summed at write time.
public struct HistogramCounts: Equatable, Sendable {
    /// Observations per bucket, `+Inf` last; not cumulative.
    public var buckets: [UInt64]
    /// The same observations at high resolution, for quantiles that see changes inside a bucket.
    public var exponential: ExponentialBuckets
    /// The exact sum of observed values, in nanoseconds.
    public var sumNanoseconds: Int128

    /// Empty counts for `bucketCount` buckets (including `+Inf`).
    public init(bucketCount: Int) {
        buckets = Array(repeating: 0, count: bucketCount)
        exponential = ExponentialBuckets()
        sumNanoseconds = 0
    }

    /// Counts from their parts; `exponential` is `.unrecorded` for counts kept before perfgate
    /// recorded exponential buckets.
    public init(buckets: [UInt64], exponential: ExponentialBuckets, sumNanoseconds: Int128) {
        self.buckets = buckets
        self.exponential = exponential
        self.sumNanoseconds = sumNanoseconds
    }

    /// The number of observations.
    public var count: UInt64 {
        buckets.reduce(0, &+)
    }

    /// Records one observation that falls in `bucket`.
    @inline(__always)
    public mutating func observe(nanoseconds: Int64, bucket: Int) {
        buckets[bucket] &+= 1
        exponential.observe(nanoseconds: nanoseconds)
        sumNanoseconds += Int128(nanoseconds)
    }

    /// Adds another set of counts of the same layout.
    public mutating func add(_ other: HistogramCounts) {
        precondition(buckets.count == other.buckets.count, "counts of different layouts")
        for index in buckets.indices {
            buckets[index] &+= other.buckets[index]
        }
        exponential.add(other.exponential)
        sumNanoseconds += other.sumNanoseconds
    }

    /// The cumulative counts, as the exposition and `histogram_quantile` see them.
    public var cumulative: [UInt64] {
        var running: UInt64 = 0
        return buckets.map {
            running &+= $0
            return running
        }
    }
}
