import CSQLite
import PerfgateCore

/// Bucket counts as stored in a BLOB column: one little-endian 64-bit integer per bucket, `+Inf` last.
enum CountsBlob {
    /// The blob for a bucket array.
    static func encode(_ buckets: [UInt64]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: buckets.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (index, count) in buckets.enumerated() {
                raw.storeBytes(of: count.littleEndian, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        return bytes
    }

    /// The bucket array of a blob; nil when its length is not a whole number of counts.
    static func decode(_ raw: UnsafeRawBufferPointer) -> [UInt64]? {
        guard raw.count % 8 == 0 else { return nil }
        return (0..<raw.count / 8).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
    }

    /// Registers `perfgate_add_counts(stored, new)`, the element-wise sum of two blobs, on a
    /// connection. A stored blob that is damaged (not of the new one's length) is replaced by
    /// the new one and recorded in `corrupt`: one damaged row must not fail every commit that
    /// adds to it.
    ///
    /// Upserts add a batch's counts to a stored minute inside SQLite, so the writer never reads
    /// a row back before writing it.
    static func registerAddFunction(on connection: SQLiteConnection, corrupt: CorruptRows) throws(SQLiteError) {
        let code = sqlite3_create_function_v2(
            connection.handle, "perfgate_add_counts", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, Unmanaged.passUnretained(corrupt).toOpaque(),
            { context, _, arguments in
                guard let arguments, let left = arguments[0], let right = arguments[1] else { return }
                let leftCount = Int(sqlite3_value_bytes(left))
                let rightCount = Int(sqlite3_value_bytes(right))
                guard rightCount % 8 == 0 else {
                    sqlite3_result_error(context, "perfgate_add_counts: new counts of \(rightCount) bytes", -1)
                    return
                }
                guard leftCount == rightCount else {
                    if let user = sqlite3_user_data(context) {
                        Unmanaged<CorruptRows>.fromOpaque(user).takeUnretainedValue()
                            .record("stored bucket counts of \(leftCount) bytes (expected \(rightCount)): replaced by the counts added to them")
                    }
                    sqlite3_result_value(context, right)
                    return
                }
                guard let leftBytes = sqlite3_value_blob(left), let rightBytes = sqlite3_value_blob(right) else {
                    sqlite3_result_value(context, leftCount == 0 ? right : left)
                    return
                }
                withUnsafeTemporaryAllocation(byteCount: leftCount, alignment: 8) { out in
                    for offset in stride(from: 0, to: leftCount, by: 8) {
                        let a = UInt64(littleEndian: leftBytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                        let b = UInt64(littleEndian: rightBytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                        out.storeBytes(of: (a &+ b).littleEndian, toByteOffset: offset, as: UInt64.self)
                    }
                    sqlite3_result_blob(context, out.baseAddress, Int32(leftCount), sqliteTransient)
                }
            },
            nil, nil, nil
        )
        guard code == SQLITE_OK else {
            throw SQLiteError(code: code, handle: connection.handle, context: "registering perfgate_add_counts")
        }
    }
}

/// An exact nanosecond sum split into columns that cannot overflow: whole seconds and the rest.
struct StoredSum {
    var seconds: Int64
    var nanoseconds: Int64

    init(_ total: Int128) {
        seconds = Int64(total / 1_000_000_000)
        nanoseconds = Int64(total % 1_000_000_000)
    }

    init(seconds: Int64, nanoseconds: Int64) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    var total: Int128 { Int128(seconds) * 1_000_000_000 + Int128(nanoseconds) }
}
