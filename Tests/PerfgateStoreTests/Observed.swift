import PerfgateCore

/// The counts of `values` (nanoseconds) observed into `key`'s family as `layouts` buckets it.
func observed(_ key: SeriesKey, _ values: [Int64], layouts: BucketLayouts) -> HistogramCounts {
    let layout = layouts[key.metric]
    var counts = HistogramCounts(bucketCount: layout.bucketCount)
    for value in values { counts.observe(nanoseconds: value, bucket: layout.bucketIndex(for: value)) }
    return counts
}
