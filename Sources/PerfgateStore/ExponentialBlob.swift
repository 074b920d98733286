import CSQLite
import PerfgateCore

/// Exponential buckets in a BLOB column hold `ExponentialEncoding`'s bytes; NULL stands for counts
/// written before perfgate kept exponential buckets.
enum ExponentialBlob {
    /// Registers `perfgate_add_exponential(a, b)` on a connection: the sum of two blobs, or NULL
    /// when either is NULL (a minute that holds counts never recorded exponentially stays so).
    /// A stored blob that is damaged is replaced by the new one and recorded in `corrupt`, as
    /// `perfgate_add_counts` does.
    static func registerAddFunction(on connection: SQLiteConnection, corrupt: CorruptRows) throws(SQLiteError) {
        let code = sqlite3_create_function_v2(
            connection.handle, "perfgate_add_exponential", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, Unmanaged.passUnretained(corrupt).toOpaque(),
            { context, _, arguments in
                guard let arguments, let left = arguments[0], let right = arguments[1] else { return }
                guard sqlite3_value_type(left) != SQLITE_NULL, sqlite3_value_type(right) != SQLITE_NULL else {
                    sqlite3_result_null(context)
                    return
                }
                func bytes(_ value: OpaquePointer) -> UnsafeRawBufferPointer {
                    UnsafeRawBufferPointer(start: sqlite3_value_blob(value), count: Int(sqlite3_value_bytes(value)))
                }
                guard let sum = ExponentialEncoding.sum(bytes(left), bytes(right)) else {
                    guard ExponentialEncoding.decode(bytes(right)) != nil else {
                        sqlite3_result_error(context, "perfgate_add_exponential: damaged new buckets", -1)
                        return
                    }
                    if let user = sqlite3_user_data(context) {
                        Unmanaged<CorruptRows>.fromOpaque(user).takeUnretainedValue()
                            .record("stored exponential buckets of \(sqlite3_value_bytes(left)) bytes, damaged: replaced by the buckets added to them")
                    }
                    sqlite3_result_value(context, right)
                    return
                }
                sum.withUnsafeBytes { sqlite3_result_blob(context, $0.baseAddress, Int32($0.count), sqliteTransient) }
            },
            nil, nil, nil
        )
        guard code == SQLITE_OK else {
            throw SQLiteError(code: code, handle: connection.handle, context: "registering perfgate_add_exponential")
        }
    }
}
