// Writes a Swift file that holds each migration's file name and SQL text: files in a folder
// named `postgres` are PostgreSQL's, the others SQLite's.
// Usage: MigrationEmbedder OUTPUT.swift MIGRATION.sql...
import Foundation

let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: MigrationEmbedder OUTPUT.swift MIGRATION.sql...\n".utf8))
    exit(2)
}

func literals(_ paths: [String]) throws -> String {
    var source = ""
    for path in paths.sorted(by: { URL(fileURLWithPath: $0).lastPathComponent < URL(fileURLWithPath: $1).lastPathComponent }) {
        let name = URL(fileURLWithPath: path).lastPathComponent
        let sql = try String(contentsOfFile: path, encoding: .utf8)
        // A raw string with enough #s that no sequence in the SQL can close it early.
        var hashes = "#"
        while sql.contains("\"" + hashes) { hashes += "#" }
        source += "        Migration(fileName: \(hashes)\"\(name)\"\(hashes), sql: \(hashes)\"\"\"\n\(sql)\n\"\"\"\(hashes)),\n"
    }
    return source
}

let isPostgres = { (path: String) in URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent == "postgres" }
let paths = Array(arguments.dropFirst())
let source = """
    // Generated at build time from the top-level migrations/ folder. Do not edit.

    extension Migration {
        /// Every SQLite migration shipped with this build, in file-name order.
        static let embedded: [Migration] = [
    \(try literals(paths.filter { !isPostgres($0) }))    ]

        /// Every PostgreSQL migration shipped with this build, in file-name order.
        static let embeddedPostgres: [Migration] = [
    \(try literals(paths.filter(isPostgres)))    ]
    }

    """
try source.write(toFile: output, atomically: true, encoding: .utf8)
