import CSQLite

/// One connection to a SQLite database file, used by one thread at a time.
///
/// A thin layer over the C API: perfgate needs a handful of prepared statements, one custom
/// function and explicit transactions, and nothing more. Opened without SQLite's own mutex, so
/// it may move between threads but its owner must serialize use: the store keeps every
/// connection behind a `Mutex`, which is why it can be `Sendable`.
final class SQLiteConnection: @unchecked Sendable {
    let handle: OpaquePointer
    let path: String

    /// Opens (and with `create`, creates) the database at `path`.
    init(path: String, readOnly: Bool = false, create: Bool = false) throws(SQLiteError) {
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if create && !readOnly { flags |= SQLITE_OPEN_CREATE }
        var handle: OpaquePointer?
        let code = sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK, let handle else {
            let error = SQLiteError(code: code, handle: handle, context: "opening \(path)")
            sqlite3_close_v2(handle)
            throw error
        }
        self.handle = handle
        self.path = path
        sqlite3_busy_timeout(handle, 5000)
    }

    deinit {
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String, context: @autoclosure () -> String = "running SQL") throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        guard code == SQLITE_OK else {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_free(errorMessage)
            throw SQLiteError(code: sqlite3_extended_errcode(handle), message: message, context: context())
        }
    }

    /// Compiles a statement for repeated use.
    func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        try SQLiteStatement(connection: self, sql: sql)
    }

    /// `BEGIN IMMEDIATE` and `COMMIT`, compiled on first use: the writer runs them thousands of
    /// times a second, and `execute` would parse them each time.
    private var transactionStatements: (begin: SQLiteStatement, commit: SQLiteStatement)?

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back if it or the commit fails.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        if transactionStatements == nil {
            transactionStatements = (try prepare("BEGIN IMMEDIATE"), try prepare("COMMIT"))
        }
        let statements = transactionStatements!
        try statements.begin.run()
        do {
            let result = try body()
            try statements.commit.run()
            return result
        } catch {
            // After some errors SQLite has already rolled back; a failing ROLLBACK is then expected.
            if sqlite3_get_autocommit(handle) == 0 {
                try? execute("ROLLBACK", context: "rolling back")
            }
            throw error
        }
    }

    /// Runs `body` inside `BEGIN … COMMIT` on a connection that only reads, so that all its
    /// statements see the same snapshot of the database.
    func readTransaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN", context: "starting a read")
        defer {
            if sqlite3_get_autocommit(handle) == 0 { try? execute("COMMIT", context: "ending a read") }
        }
        return try body()
    }

    /// A single text value from a query such as a pragma.
    func scalarText(_ sql: String) throws(SQLiteError) -> String? {
        let statement = try prepare(sql)
        guard try statement.step() else { return nil }
        return statement.text(0)
    }

    /// A single integer value from a query.
    func scalarInt(_ sql: String) throws(SQLiteError) -> Int64? {
        let statement = try prepare(sql)
        guard try statement.step() else { return nil }
        return statement.isNull(0) ? nil : statement.int64(0)
    }
}
