// Writes a Swift file that holds each migration's file name and SQL text.
// Usage: MigrationEmbedder OUTPUT.swift MIGRATION.sql...
import Foundation

let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: MigrationEmbedder OUTPUT.swift MIGRATION.sql...\n".utf8))
    exit(2)
}

var source = """
    // Generated at build time from the top-level migrations/ folder. Do not edit.

    extension Migration {
        /// Every migration shipped with this build, in file-name order.
        static let embedded: [Migration] = [

    """
for path in arguments.dropFirst().sorted() {
    let name = URL(fileURLWithPath: path).lastPathComponent
    let sql = try String(contentsOfFile: path, encoding: .utf8)
    // A raw string with enough #s that no sequence in the SQL can close it early.
    var hashes = "#"
    while sql.contains("\"" + hashes) { hashes += "#" }
    source += "        Migration(fileName: \(hashes)\"\(name)\"\(hashes), sql: \(hashes)\"\"\"\n\(sql)\n\"\"\"\(hashes)),\n"
}
source += "    ]\n}\n"
try source.write(toFile: output, atomically: true, encoding: .utf8)
