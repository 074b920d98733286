/// One numbered schema change from the top-level `migrations/` folder.
struct Migration: Sendable {
    /// The file name, `0001_init.sql`.
    let fileName: String
    /// The SQL it runs.
    let sql: String

    /// The number the file name starts with.
    var version: Int? {
        Int(fileName.prefix { $0.isASCII && $0.isNumber })
    }
}
