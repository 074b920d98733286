import CSQLite

/// A failed SQLite call: the result code, SQLite's message, and what perfgate was doing.
package struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The primary or extended result code.
    package let code: Int32
    /// SQLite's own explanation.
    package let message: String
    /// What perfgate was doing (`"opening /data/perfgate.sqlite"`).
    package let context: String

    init(code: Int32, message: String, context: String) {
        self.code = code
        self.message = message
        self.context = context
    }

    init(code: Int32, handle: OpaquePointer?, context: String) {
        let message = handle.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        self.init(code: code, message: message, context: context)
    }

    /// True when the disk or its quota is full.
    package var isDiskFull: Bool { code & 0xFF == SQLITE_FULL }

    /// True when the file is not a database or is damaged.
    package var isCorrupt: Bool { code & 0xFF == SQLITE_CORRUPT || code & 0xFF == SQLITE_NOTADB }

    package var description: String { "\(context): \(message) (SQLite code \(code))" }
}
