import PerfgateCore

/// Sums of stored rollups per series, added straight from their bucket blobs into one flat
/// array: reading a window of a hundred thousand rows makes no array per row and looks each
/// row's series up once.
struct WindowSums {
    /// Buckets per series, `+Inf` included: every blob must hold exactly this many counts.
    let bucketCount: Int
    private let slots: [SeriesID: Int]
    private let ids: [SeriesID]
    private var buckets: [UInt64]
    private var sums: [Int128]
    private var seen: [Bool]

    /// Room for each of `series`; rows of other series are skipped.
    init(bucketCount: Int, series: Set<SeriesID>) {
        self.bucketCount = bucketCount
        ids = Array(series)
        slots = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        buckets = Array(repeating: 0, count: ids.count * bucketCount)
        sums = Array(repeating: 0, count: ids.count)
        seen = Array(repeating: false, count: ids.count)
    }

    /// Where series `id` is summed, or nil when it is not one of the series asked for.
    func slot(of id: SeriesID) -> Int? {
        slots[id]
    }

    /// Adds one stored minute into `slot`; false when the blob is not of `bucketCount` counts.
    mutating func add(_ blob: UnsafeRawBufferPointer, sum: Int128, to slot: Int) -> Bool {
        guard blob.count == bucketCount * 8 else { return false }
        let start = slot * bucketCount
        buckets.withUnsafeMutableBufferPointer { out in
            for index in 0..<bucketCount {
                out[start + index] &+= UInt64(littleEndian: blob.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
            }
        }
        sums[slot] += sum
        seen[slot] = true
        return true
    }

    /// The sums of the series that had rows.
    func totals() -> [SeriesID: HistogramCounts] {
        var totals: [SeriesID: HistogramCounts] = [:]
        for (slot, id) in ids.enumerated() where seen[slot] {
            let start = slot * bucketCount
            totals[id] = HistogramCounts(buckets: Array(buckets[start..<(start + bucketCount)]), sumNanoseconds: sums[slot])
        }
        return totals
    }
}
