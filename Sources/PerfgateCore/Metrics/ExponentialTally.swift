/// Exponential buckets being counted during ingest, for all of a batch's series-minutes at once.
///
/// Each observation appends its slot and bucket index to one array and widens its slot's range:
/// the hot loop stores into one sequential array and one small one. The buckets of every slot are
/// made once, at the end, in one pass over that array, which counts each observation in its
/// slot's cell of one flat array holding every slot's range (so a request's counting stays
/// in one small block of memory), and each range is read out as sparse buckets. A slot whose
/// range is wide for its few observations (1 ms and 60 s in one minute) is counted by sorting its
/// indices instead. A dense array of counts per slot, grown as needed, cost more: hundreds of
/// scattered cells for the few dozen observations a slot gets from one request.
package struct ExponentialTally {
    /// Slot in the high 32 bits, bucket index in the low 32; observations of zero are only counted.
    private var entries: [UInt64] = []
    /// Per slot, the range of its indices and how many observations it has, kept as they come.
    private var ranges: [Range] = []

    private struct Range {
        var low = Int32.max
        var high = Int32.min
        var observed = 0
        var zeros: UInt64 = 0
    }

    /// An empty tally with room for `capacity` observations.
    package init(capacity: Int) {
        entries.reserveCapacity(capacity)
    }

    /// Makes room for `count` slots.
    package mutating func reserveSlots(_ count: Int) {
        ranges.reserveCapacity(count)
    }

    /// Adds a slot, numbered from 0 in the order added.
    package mutating func addSlot() {
        ranges.append(Range())
    }

    /// Records one observation of `slot` in exponential bucket `index`; nil for a zero duration.
    @inline(__always)
    package mutating func observe(slot: Int, index: Int32?) {
        guard let index else {
            ranges[slot].zeros += 1
            return
        }
        entries.append(UInt64(truncatingIfNeeded: slot) << 32 | UInt64(UInt32(bitPattern: index)))
        ranges[slot].observed += 1
        ranges[slot].low = min(ranges[slot].low, index)
        ranges[slot].high = max(ranges[slot].high, index)
    }

    /// The buckets of every slot.
    package func buckets() -> [ExponentialBuckets] {
        let slotCount = ranges.count
        // Where each slot's range starts in the cells; -1 for a slot counted by sorting.
        var starts = [Int](repeating: -1, count: slotCount)
        var cellCount = 0
        for (slot, range) in ranges.enumerated() where range.observed > 0 {
            let width = Int(range.high) - Int(range.low) + 1
            // Scanning a cell costs a few instructions, sorting dozens per observation.
            if width <= 16 * range.observed + 256 {
                starts[slot] = cellCount
                cellCount += width
            }
        }
        // A slot has at most one observation per event, so a cell cannot overflow 32 bits.
        var cells = [UInt32](repeating: 0, count: cellCount)
        var sorted: [UInt64] = []
        cells.withUnsafeMutableBufferPointer { cells in
            entries.withUnsafeBufferPointer { entries in
                for entry in entries {
                    let slot = Int(entry >> 32)
                    let index = Int32(bitPattern: UInt32(truncatingIfNeeded: entry))
                    let start = starts[slot]
                    if start >= 0 {
                        cells[start + Int(index) - Int(ranges[slot].low)] &+= 1
                    } else {
                        // Sign bit flipped, so that unsigned order is the indices' order.
                        sorted.append(entry ^ 0x8000_0000)
                    }
                }
            }
        }
        // By slot, then by index.
        sorted.sort()
        var position = 0
        return cells.withUnsafeBufferPointer { cells in
            (0..<slotCount).map { slot in
                let range = ranges[slot]
                if starts[slot] >= 0 {
                    let width = Int(range.high - range.low) + 1
                    return ExponentialBuckets(
                        zeroCount: range.zeros, lowest: range.low, cells: UnsafeBufferPointer(rebasing: cells[starts[slot]..<(starts[slot] + width)])
                    )
                }
                var indices: [Int32] = []
                var counts: [UInt64] = []
                while position < sorted.count && Int(sorted[position] >> 32) == slot {
                    let index = Int32(bitPattern: UInt32(truncatingIfNeeded: sorted[position] ^ 0x8000_0000))
                    if indices.last == index { counts[counts.count - 1] += 1 } else {
                        indices.append(index)
                        counts.append(1)
                    }
                    position += 1
                }
                return ExponentialBuckets(zeroCount: range.zeros, indices: indices, counts: counts)
            }
        }
    }
}
