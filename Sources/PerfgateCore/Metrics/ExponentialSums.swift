/// Exponential buckets summed per slot over many stored rows (a trend window, a status-page step,
/// start-up): each row's buckets are appended to one sequential list, and the list is sorted by
/// slot and summed once, by `finish()`, before the sums are read.
///
/// Summing each row into a span of its own series touched a thousand scattered spans in turn,
/// one per row of the minute; perf showed the trend query stalled on those stores (55 ms for
/// 1,000 series x 2 h against 31 ms without exponential buckets). Appending keeps the row loop on
/// memory it just wrote.
///
/// The list is summed into `folded` whenever it reaches `pendingLimit`, so a read's memory is
/// bounded by its slots and the buckets they hold, whatever number of rows (minutes of retention)
/// it reads.
package struct ExponentialSums {
    private let slotCount: Int
    private var zeroCounts: [UInt64]
    private var incomplete: [Bool]
    /// Slot in the high 32 bits, bucket index in the low 32, beside each bucket's count.
    private var pendingBuckets: [UInt64] = []
    private var pendingCounts: [UInt64] = []
    /// What was summed so far; nil until the first fold.
    private var folded: [ExponentialBuckets]?
    private var finished = false
    /// Most buckets appended before they are summed: 256 Ki entries, 4 MiB with their counts.
    package static let pendingLimit = 1 << 18

    /// Sums for `slots` slots, all empty.
    package init(slots: Int) {
        slotCount = slots
        zeroCounts = Array(repeating: 0, count: slots)
        incomplete = Array(repeating: false, count: slots)
    }

    /// Adds a row's encoded buckets (`ExponentialEncoding`) to `slot`; false when they are damaged.
    package mutating func add(encoded raw: UnsafeRawBufferPointer, to slot: Int) -> Bool {
        finished = false
        var zeros: UInt64 = 0
        let before = pendingBuckets.count
        let read = ExponentialEncoding.read(raw, zeros: { zeros = $0 }) { index, count in
            pendingBuckets.append(Self.pack(slot, index))
            pendingCounts.append(count)
        }
        guard read else {
            // All or nothing: a damaged row adds none of the buckets read before the damage.
            pendingBuckets.removeSubrange(before...)
            pendingCounts.removeSubrange(before...)
            return false
        }
        zeroCounts[slot] &+= zeros
        if pendingBuckets.count >= Self.pendingLimit { fold() }
        return true
    }

    /// Adds buckets already read (a series' base) to `slot`.
    package mutating func add(_ buckets: ExponentialBuckets, to slot: Int) {
        finished = false
        if !buckets.isComplete { incomplete[slot] = true }
        zeroCounts[slot] &+= buckets.zeroCount
        for (index, count) in zip(buckets.indices, buckets.counts) {
            pendingBuckets.append(Self.pack(slot, index))
            pendingCounts.append(count)
        }
        if pendingBuckets.count >= Self.pendingLimit { fold() }
    }

    /// Marks `slot` as holding observations never recorded exponentially.
    package mutating func markIncomplete(_ slot: Int) {
        finished = false
        incomplete[slot] = true
    }

    /// Sums what was added; the sums can be read from then on.
    package mutating func finish() {
        guard !finished else { return }
        fold()
        finished = true
    }

    /// What `slot` summed; `finish()` first.
    package func buckets(ofSlot slot: Int) -> ExponentialBuckets {
        precondition(finished, "ExponentialSums read before finish()")
        return folded![slot]
    }

    /// Sums the pending list into `folded` and empties it (keeping its capacity for the next rows).
    private mutating func fold() {
        let partial = sum()
        if var folded {
            self.folded = nil
            for slot in 0..<slotCount { folded[slot].add(partial[slot]) }
            self.folded = folded
        } else {
            folded = partial
        }
        pendingBuckets.removeAll(keepingCapacity: true)
        pendingCounts.removeAll(keepingCapacity: true)
        for slot in 0..<slotCount { zeroCounts[slot] = 0 }
    }

    @inline(__always)
    private static func pack(_ slot: Int, _ index: Int32) -> UInt64 {
        UInt64(truncatingIfNeeded: slot) << 32 | UInt64(UInt32(bitPattern: index))
    }

    /// Sorts the appended buckets by slot (a counting sort), then sums each slot's run in a dense
    /// scratch array spanning just that run's indices.
    private func sum() -> [ExponentialBuckets] {
        var starts = [Int](repeating: 0, count: slotCount + 1)
        var indices = [Int32](repeating: 0, count: pendingBuckets.count)
        var counts = [UInt64](repeating: 0, count: pendingBuckets.count)
        pendingBuckets.withUnsafeBufferPointer { pending in
            pendingCounts.withUnsafeBufferPointer { pendingCounts in
                starts.withUnsafeMutableBufferPointer { starts in
                    for entry in pending { starts[Int(entry >> 32) + 1] += 1 }
                    for slot in 0..<slotCount { starts[slot + 1] += starts[slot] }
                    var next = Array(starts.dropLast())
                    next.withUnsafeMutableBufferPointer { next in
                        indices.withUnsafeMutableBufferPointer { indices in
                            counts.withUnsafeMutableBufferPointer { counts in
                                for (position, entry) in pending.enumerated() {
                                    let slot = Int(entry >> 32)
                                    indices[next[slot]] = Int32(bitPattern: UInt32(truncatingIfNeeded: entry))
                                    counts[next[slot]] = pendingCounts[position]
                                    next[slot] += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        var scratch: [UInt64] = []
        return (0..<slotCount).map { slot in
            let run = starts[slot]..<starts[slot + 1]
            guard !run.isEmpty else {
                return ExponentialBuckets(zeroCount: zeroCounts[slot], indices: [], counts: [], isComplete: !incomplete[slot])
            }
            var low = Int32.max
            var high = Int32.min
            for position in run {
                low = min(low, indices[position])
                high = max(high, indices[position])
            }
            let width = Int(high - low) + 1
            if scratch.count < width { scratch = Array(repeating: 0, count: width) }
            return scratch.withUnsafeMutableBufferPointer { scratch in
                for position in run { scratch[Int(indices[position] - low)] &+= counts[position] }
                let used = UnsafeMutableBufferPointer(rebasing: scratch[..<width])
                defer { used.update(repeating: 0) }
                return ExponentialBuckets(zeroCount: zeroCounts[slot], lowest: low, cells: UnsafeBufferPointer(used), isComplete: !incomplete[slot])
            }
        }
    }
}
