import PerfgateCore

/// Reasons the store refuses to open or to write, with what to do about them.
package enum StoreError: Error, CustomStringConvertible, Sendable {
    /// The database has migrations this build does not know.
    case newerSchema(path: String, found: Int, supported: Int)
    /// A bucket layout differs from the one the database was written with.
    case layoutChanged(metric: String, stored: String, configured: String)
    /// A migration file's name does not start with its number.
    case invalidMigrationName(String)
    /// The file exists but is not a perfgate database, or is damaged.
    case unreadable(path: String, underlying: SQLiteError)
    /// A stored row does not decode.
    case damagedRow(String)
    /// The file system holding the store has no room left for a commit.
    case diskFull(path: String)
    /// The file or its folder cannot be written (read-only file, mount or permissions).
    case notWritable(path: String, reason: String)
    /// The store was closed; it takes no more calls.
    case closed
    /// The database server could not be reached.
    case unavailable(what: String, reason: String)
    /// The connection to the database server closed before a statement was answered.
    case connectionLost(String)
    /// The database server refused a statement.
    case postgres(String)

    package var description: String {
        switch self {
        case .newerSchema(let path, let found, let supported):
            "\(path) has schema version \(found), newer than this perfgate supports (\(supported)); run a newer perfgate or open another store file"
        case .layoutChanged(let metric, let stored, let configured):
            "the buckets of \(metric) changed from \(stored) to \(configured); counts already stored cannot be re-bucketed. Restore the old buckets, or start with a new store file"
        case .invalidMigrationName(let name):
            "migration \(name) must start with its number, e.g. 0002_add_index.sql"
        case .unreadable(let path, let underlying):
            "\(path) cannot be read as a perfgate database (\(underlying.message)); it may be damaged or not a SQLite file. Move it aside or open another store file"
        case .damagedRow(let detail):
            "the store holds a damaged row: \(detail)"
        case .diskFull(let path):
            "the disk holding \(path) is full"
        case .notWritable(let path, let reason):
            "\(path) cannot be written (\(reason)); perfgate must write every batch it acknowledges. Make the file and its folder writable, or open another store file"
        case .closed:
            "the store is closed"
        case .unavailable(let what, let reason):
            "the database \(what) is unavailable: \(reason)"
        case .connectionLost(let detail):
            "the connection to the database was lost before a statement was answered (\(detail))"
        case .postgres(let message):
            "PostgreSQL: \(message)"
        }
    }
}

/// How the stores describe a rollup row that did not add, for `CorruptRows`: one wording for both.
enum RowDamage {
    /// What is wrong with stored counts of a series whose family has `expected` buckets: classic
    /// counts of another width, or exponential buckets (empty: none) that do not decode; nil
    /// when they read.
    static func counts(bucketBytes: UnsafeRawBufferPointer, exponential: UnsafeRawBufferPointer, expected: Int) -> String? {
        guard bucketBytes.count == expected * 8 else { return "\(bucketBytes.count) bytes of bucket counts, expected \(expected * 8)" }
        if !exponential.isEmpty, ExponentialEncoding.decode(exponential) == nil { return "damaged exponential buckets" }
        return nil
    }

    /// A rollup of `series` at `minute` holding `bytes` bytes of bucket counts where `expected`
    /// buckets were due; the right length means its exponential buckets were the damage.
    static func rollup(of series: SeriesID, at minute: Int64, bucketBytes bytes: Int, expected: Int) -> String {
        let what = bytes == expected * 8 ? "damaged exponential buckets" : "\(bytes) bytes of bucket counts, expected \(expected * 8)"
        return "rollup of series \(series) at minute \(minute): \(what)"
    }
}
