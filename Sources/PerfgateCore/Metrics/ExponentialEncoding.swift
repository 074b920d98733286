/// Exponential buckets in compact form, as the store keeps them in a BLOB column: the schema (one
/// byte, 6), the zero count, the number of buckets, then per bucket its index as a zig-zag delta
/// from the previous one and its count, all as LEB128 varints. A minute of one series typically
/// holds tens of buckets, a few bytes each.
package enum ExponentialEncoding {
    /// The encoding of `buckets`, which must be complete (incomplete ones are stored as NULL).
    package static func encode(_ buckets: ExponentialBuckets) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ExponentialBuckets.schema)]
        bytes.reserveCapacity(8 + buckets.indices.count * 3)
        Varint.append(buckets.zeroCount, to: &bytes)
        Varint.append(UInt64(buckets.indices.count), to: &bytes)
        var previous: Int32 = 0
        for (index, count) in zip(buckets.indices, buckets.counts) {
            let delta = Int64(index) - Int64(previous)
            Varint.append(Varint.zigzag(delta), to: &bytes)
            Varint.append(count, to: &bytes)
            previous = index
        }
        return bytes
    }

    /// Reads an encoding, calling `zeros` once with the zero count and `bucket` per bucket in
    /// increasing order of index; false when the bytes are not an encoding this version wrote.
    @inline(__always)
    package static func read(_ raw: UnsafeRawBufferPointer, zeros: (UInt64) -> Void, bucket: (Int32, UInt64) -> Void) -> Bool {
        guard var cursor = Cursor(raw) else { return false }
        zeros(cursor.zeroCount)
        while let index = cursor.index {
            bucket(Int32(index), cursor.count)
            guard cursor.advance() else { return false }
        }
        return cursor.atEnd
    }

    /// The buckets of an encoding; nil when it is damaged.
    package static func decode(_ raw: UnsafeRawBufferPointer) -> ExponentialBuckets? {
        var zeroCount: UInt64 = 0
        var indices: [Int32] = []
        var counts: [UInt64] = []
        let read = read(raw, zeros: { zeroCount = $0 }) { index, count in
            indices.append(index)
            counts.append(count)
        }
        guard read else { return nil }
        return ExponentialBuckets(zeroCount: zeroCount, indices: indices, counts: counts)
    }

    /// The encoding of the sum of two encodings, merged as they are read: no buckets are built.
    /// The store calls this for every upsert of a minute that already holds counts, and a busy
    /// minute holds hundreds of buckets. Nil when either is damaged.
    package static func sum(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> [UInt8]? {
        guard var a = Cursor(left), var b = Cursor(right) else { return nil }
        // A merged bucket takes no more bytes than the one or two it comes from: its index step is
        // no longer than in its input, except for the first bucket of the input that starts higher,
        // whose step from 0 becomes a step from the other's buckets (up to 10 bytes). The body is
        // written after room for the longest header, which is written once the count is known.
        let headerRoom = 1 + 10 + 10
        var failed = false
        let bytes = [UInt8](unsafeUninitializedCapacity: headerRoom + left.count + right.count + 10) { buffer, initialized in
            var position = headerRoom
            var written: UInt64 = 0
            var previous: Int64 = 0
            func emit(_ index: Int64, _ count: UInt64) {
                Varint.write(Varint.zigzag(index - previous), to: buffer, at: &position)
                Varint.write(count, to: buffer, at: &position)
                previous = index
                written += 1
            }
            while !failed, let ai = a.index, let bi = b.index {
                if ai < bi {
                    emit(ai, a.count)
                    failed = !a.advance()
                } else if bi < ai {
                    emit(bi, b.count)
                    failed = !b.advance()
                } else {
                    emit(ai, a.count &+ b.count)
                    failed = !a.advance() || !b.advance()
                }
            }
            while !failed, let ai = a.index {
                emit(ai, a.count)
                failed = !a.advance()
            }
            while !failed, let bi = b.index {
                emit(bi, b.count)
                failed = !b.advance()
            }
            guard !failed, a.atEnd, b.atEnd else {
                failed = true
                initialized = 0
                return
            }
            var header = 0
            buffer[header] = UInt8(ExponentialBuckets.schema)
            header += 1
            Varint.write(a.zeroCount &+ b.zeroCount, to: buffer, at: &header)
            Varint.write(written, to: buffer, at: &header)
            let body = position - headerRoom
            if header < headerRoom, let base = buffer.baseAddress {
                (base + header).update(from: base + headerRoom, count: body)
            }
            initialized = header + body
        }
        return failed ? nil : bytes
    }

    /// Reads one encoding bucket by bucket, checking as it goes: the one reader of the format.
    private struct Cursor {
        let raw: UnsafeRawBufferPointer
        var position = 1
        var remaining: UInt64
        let zeroCount: UInt64
        /// The current bucket, nil past the last.
        var index: Int64?
        var count: UInt64 = 0

        @inline(__always)
        init?(_ raw: UnsafeRawBufferPointer) {
            guard raw.count >= 3, raw[0] == UInt8(ExponentialBuckets.schema) else { return nil }
            self.raw = raw
            guard let zeros = Varint.read(raw, &position), let count = Varint.read(raw, &position) else { return nil }
            zeroCount = zeros
            remaining = count
            index = 0
            guard advance() else { return nil }
        }

        /// Moves to the next bucket; false when the bytes are damaged.
        @inline(__always)
        mutating func advance() -> Bool {
            guard remaining > 0, let previous = index else {
                index = nil
                return true
            }
            guard let delta = Varint.read(raw, &position), let value = Varint.read(raw, &position), value > 0 else { return false }
            // A step of any size is read; one past the index range (or past Int64) is damage.
            let (next, overflowed) = previous.addingReportingOverflow(Varint.unzigzag(delta))
            guard !overflowed else { return false }
            // Indices must increase (the first may be anything) and lie in the range stored
            // buckets have: a damaged row is refused here, never trapped on downstream.
            if count > 0, next <= previous { return false }
            guard next >= Int64(ExponentialBuckets.storedIndices.lowerBound), next <= Int64(ExponentialBuckets.storedIndices.upperBound) else { return false }
            index = next
            count = value
            remaining -= 1
            return true
        }

        var atEnd: Bool { index == nil && position == raw.count }
    }
}
