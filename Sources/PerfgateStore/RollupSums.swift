import PerfgateCore

/// Sums of stored bucket blobs per series, added in place into one flat array (exponential
/// buckets through `ExponentialSums`): reading a hundred thousand rows (a trend window) or a
/// million (start-up) makes no array per row and looks each row's series up once.
struct RollupSums {
    private let lookup: SlotLookup
    private let ids: [SeriesID]
    private let starts: [Int]
    private let widths: [Int]
    private var buckets: [UInt64]
    private var exponentials: ExponentialSums
    private var sums: [Int128]
    private var seen: [Bool]

    /// Room for each series with its bucket count (`+Inf` included); rows of others are skipped.
    init(series: [(id: SeriesID, bucketCount: Int)]) {
        ids = series.map(\.id)
        widths = series.map(\.bucketCount)
        var starts: [Int] = []
        var total = 0
        for width in widths {
            starts.append(total)
            total += width
        }
        self.starts = starts
        lookup = SlotLookup(ids)
        buckets = Array(repeating: 0, count: total)
        exponentials = ExponentialSums(slots: ids.count)
        sums = Array(repeating: 0, count: ids.count)
        seen = Array(repeating: false, count: ids.count)
    }

    /// `count` slots of one bucket count, addressed by position only (no series to look up).
    init(slots count: Int, bucketCount: Int) {
        ids = (0..<count).map { SeriesID($0) }
        widths = Array(repeating: bucketCount, count: count)
        starts = (0..<count).map { $0 * bucketCount }
        lookup = .byDictionary([:])
        buckets = Array(repeating: 0, count: count * bucketCount)
        exponentials = ExponentialSums(slots: count)
        sums = Array(repeating: 0, count: count)
        seen = Array(repeating: false, count: count)
    }

    /// Where series `id` is summed, or nil when it is not one of the series asked for.
    func slot(of id: SeriesID) -> Int? {
        switch lookup {
        case .byIndex(let table):
            guard id >= 0 && id < table.count, table[Int(id)] >= 0 else { return nil }
            return Int(table[Int(id)])
        case .byDictionary(let slots):
            return slots[id]
        }
    }

    /// Where each series is summed. Read for every row: by an array indexed by id (-1: not asked
    /// for) when ids are small, as perfgate's are, an array index costing a fraction of a
    /// dictionary's hashing; else by a dictionary.
    private enum SlotLookup {
        case byIndex([Int32])
        case byDictionary([SeriesID: Int])

        init(_ ids: [SeriesID]) {
            guard let largest = ids.max(), ids.min()! >= 0, largest < 4 * Int64(ids.count) + 65_536, ids.count < Int(Int32.max) else {
                self = .byDictionary(Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) }))
                return
            }
            var table = [Int32](repeating: -1, count: Int(largest) + 1)
            for (slot, id) in ids.enumerated() { table[Int(id)] = Int32(slot) }
            self = .byIndex(table)
        }
    }

    /// The bucket count of the series in `slot`.
    func bucketCount(ofSlot slot: Int) -> Int {
        widths[slot]
    }

    /// Adds one stored row into `slot`: its classic blob, its exponential blob (nil when the row
    /// has none: it was written before perfgate kept them) and its sum; false when a blob is
    /// damaged or not of the slot's bucket count.
    mutating func add(_ blob: UnsafeRawBufferPointer, exponential: UnsafeRawBufferPointer?, sum: Int128, to slot: Int) -> Bool {
        let width = widths[slot]
        guard blob.count == width * 8 else { return false }
        if let exponential {
            guard exponentials.add(encoded: exponential, to: slot) else { return false }
        } else {
            markIncomplete(slot)
        }
        let start = starts[slot]
        buckets.withUnsafeMutableBufferPointer { out in
            for index in 0..<width {
                out[start + index] &+= UInt64(littleEndian: blob.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
            }
        }
        sums[slot] += sum
        seen[slot] = true
        return true
    }

    /// Adds exponential buckets alone (a row of `exponential_log`) into `slot`; false when damaged.
    mutating func addExponential(_ encoded: UnsafeRawBufferPointer, to slot: Int) -> Bool {
        exponentials.add(encoded: encoded, to: slot)
    }

    /// Marks `slot` as holding observations never recorded exponentially (a series older than them).
    mutating func markIncomplete(_ slot: Int) {
        exponentials.markIncomplete(slot)
    }

    /// Adds counts already read (a series' base) into `slot`, which must be of their layout.
    mutating func add(_ counts: HistogramCounts, to slot: Int) {
        precondition(counts.buckets.count == widths[slot], "counts of another layout")
        for (index, count) in counts.buckets.enumerated() { buckets[starts[slot] + index] &+= count }
        exponentials.add(counts.exponential, to: slot)
        sums[slot] += counts.sumNanoseconds
        seen[slot] = true
    }

    /// Completes the sums; call once every row is added, before reading them.
    mutating func finish() {
        exponentials.finish()
    }

    /// The counts summed in `slot` (zero when nothing was added); after `finish()`.
    func counts(ofSlot slot: Int) -> HistogramCounts {
        let start = starts[slot]
        return HistogramCounts(buckets: Array(buckets[start..<(start + widths[slot])]), exponential: exponentials.buckets(ofSlot: slot), sumNanoseconds: sums[slot])
    }

    /// The sums per series: of every series, or only of those that had something added.
    func totals(includingEmpty: Bool) -> [SeriesID: HistogramCounts] {
        var totals: [SeriesID: HistogramCounts] = [:]
        totals.reserveCapacity(ids.count)
        for (slot, id) in ids.enumerated() where includingEmpty || seen[slot] {
            totals[id] = counts(ofSlot: slot)
        }
        return totals
    }
}
