import Foundation
import Logging
import PostgresNIO

/// Applies the PostgreSQL migrations a database has not yet had, in order, each in its own
/// transaction, under an advisory lock: replicas that start at once apply each migration once.
struct PostgresMigrator {
    let connection: PostgresConnection
    let logger: Logger
    let location: PostgresLocation

    /// The advisory lock key migrations take ("pgmigrat" in ASCII).
    private static let lock: Int64 = 0x7067_6d69_6772_6174

    /// Applies what is missing; refuses a database written by a newer schema.
    func migrate(_ migrations: [Migration]) async throws {
        let known = try migrations.map { migration -> (Int, Migration) in
            guard let version = migration.version else { throw StoreError.invalidMigrationName(migration.fileName) }
            return (version, migration)
        }
        .sorted { $0.0 < $1.0 }
        let newest = known.last?.0 ?? 0
        try await run("SELECT pg_advisory_lock(\(Self.lock))")
        do {
            try await run(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            var applied = 0
            for try await version in try await connection.query("SELECT coalesce(max(version), 0) FROM schema_migrations", logger: logger).decode(Int32.self) {
                applied = Int(version)
            }
            if applied > newest {
                throw StoreError.newerSchema(path: "\(location)", found: applied, supported: newest)
            }
            for (version, migration) in known where version > applied {
                try await run("BEGIN")
                do {
                    try await run(migration.sql)
                    try await connection.query(
                        "INSERT INTO schema_migrations (version, name) VALUES (\(Int32(version)), \(migration.fileName))", logger: logger
                    )
                    try await run("COMMIT")
                } catch {
                    try? await run("ROLLBACK")
                    throw error
                }
                logger.info("applied migration", metadata: ["migration": "\(migration.fileName)"])
            }
        } catch {
            try? await run("SELECT pg_advisory_unlock(\(Self.lock))")
            throw PostgresRollupStore.described(error)
        }
        try await run("SELECT pg_advisory_unlock(\(Self.lock))")
    }

    /// Runs SQL with no parameters: one statement, or a migration file of several.
    private func run(_ sql: String) async throws {
        for statement in Self.statements(in: sql) {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
    }

    /// A migration's statements. Each ends with a semicolon at the end of a line (migrations/postgres
    /// holds no function bodies); `--` comments are dropped.
    static func statements(in sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            let code = line.drop { $0 == " " }.hasPrefix("--") ? "" : String(line)
            current += code + "\n"
            if code.trimmingCharacters(in: .whitespaces).hasSuffix(";") {
                statements.append(current.trimmingCharacters(in: .whitespacesAndNewlines))
                current = ""
            }
        }
        let rest = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { statements.append(rest) }
        return statements
    }
}
