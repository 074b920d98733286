import CSQLite
import PerfgateCore

/// Exponential buckets as stored in a BLOB column: the schema (one byte, 6), the zero count, the
/// number of buckets, then per bucket its index as a zig-zag delta from the previous one and its
/// count, all as LEB128 varints. A minute of one series typically holds tens of buckets, a few
/// bytes each. NULL (no blob) stands for counts written before perfgate kept exponential buckets.
enum ExponentialBlob {
    /// The blob of `buckets`, which must be complete (incomplete ones are stored as NULL).
    static func encode(_ buckets: ExponentialBuckets) -> [UInt8] {
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

    /// Reads a blob, calling `zeros` once with the zero count and `bucket` per bucket in order;
    /// false when the blob is not one this version wrote.
    @inline(__always)
    static func read(_ raw: UnsafeRawBufferPointer, zeros: (UInt64) -> Void, bucket: (Int32, UInt64) -> Void) -> Bool {
        guard raw.count >= 3, raw[0] == UInt8(ExponentialBuckets.schema) else { return false }
        var position = 1
        guard let zeroCount = Varint.read(raw, &position), let count = Varint.read(raw, &position) else { return false }
        zeros(zeroCount)
        var index: Int64 = 0
        for _ in 0..<count {
            guard let zigzag = Varint.read(raw, &position), let value = Varint.read(raw, &position) else { return false }
            index += Varint.unzigzag(zigzag)
            guard index >= Int64(Int32.min), index <= Int64(Int32.max), value > 0 else { return false }
            bucket(Int32(index), value)
        }
        return position == raw.count
    }

    /// The buckets of a blob; nil when it is damaged.
    static func decode(_ raw: UnsafeRawBufferPointer) -> ExponentialBuckets? {
        var zeroCount: UInt64 = 0
        var indices: [Int32] = []
        var counts: [UInt64] = []
        var last = Int32.min
        var ordered = true
        let read = read(raw, zeros: { zeroCount = $0 }) { index, count in
            if !indices.isEmpty && index <= last { ordered = false }
            last = index
            indices.append(index)
            counts.append(count)
        }
        guard read, ordered else { return nil }
        return ExponentialBuckets(zeroCount: zeroCount, indices: indices, counts: counts)
    }

    /// Adds a blob into a span; false when it is damaged.
    static func add(_ raw: UnsafeRawBufferPointer, into span: inout ExponentialSpan) -> Bool {
        read(raw, zeros: { span.addZeros($0) }) { index, count in span.add(count, at: index) }
    }

    /// Registers `perfgate_add_exponential(a, b)` on a connection: the sum of two blobs, or NULL
    /// when either is NULL (a minute that holds counts never recorded exponentially stays so).
    static func registerAddFunction(on connection: SQLiteConnection) throws(SQLiteError) {
        let code = sqlite3_create_function_v2(
            connection.handle, "perfgate_add_exponential", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nil,
            { context, _, arguments in
                guard let arguments, let left = arguments[0], let right = arguments[1] else { return }
                guard sqlite3_value_type(left) != SQLITE_NULL, sqlite3_value_type(right) != SQLITE_NULL else {
                    sqlite3_result_null(context)
                    return
                }
                var span = ExponentialSpan()
                var valid = true
                for value in [left, right] {
                    let count = Int(sqlite3_value_bytes(value))
                    let raw = UnsafeRawBufferPointer(start: sqlite3_value_blob(value), count: count)
                    valid = valid && ExponentialBlob.add(raw, into: &span)
                }
                guard valid else {
                    sqlite3_result_error(context, "perfgate_add_exponential: a damaged exponential bucket blob", -1)
                    return
                }
                let sum = ExponentialBlob.encode(span.buckets)
                sum.withUnsafeBytes { sqlite3_result_blob(context, $0.baseAddress, Int32($0.count), sqliteTransient) }
            },
            nil, nil, nil
        )
        guard code == SQLITE_OK else {
            throw SQLiteError(code: code, handle: connection.handle, context: "registering perfgate_add_exponential")
        }
    }
}
