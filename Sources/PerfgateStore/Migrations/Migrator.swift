/// Applies the migrations a database has not yet had, in order, and records each one.
struct Migrator {
    let connection: SQLiteConnection
    let migrations: [Migration]

    /// Applies what is missing; refuses a database written by a newer schema.
    /// Returns the versions applied now.
    @discardableResult
    func migrate() throws -> [Int] {
        try connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            ) STRICT
            """,
            context: "creating schema_migrations in \(connection.path)"
        )
        let known = try migrations.map { migration -> (Int, Migration) in
            guard let version = migration.version else {
                throw StoreError.invalidMigrationName(migration.fileName)
            }
            return (version, migration)
        }
        .sorted { $0.0 < $1.0 }
        let newest = known.last?.0 ?? 0
        let applied = try connection.scalarInt("SELECT max(version) FROM schema_migrations") ?? 0
        if applied > newest {
            throw StoreError.newerSchema(path: connection.path, found: Int(applied), supported: newest)
        }

        var appliedNow: [Int] = []
        let record = try connection.prepare("INSERT INTO schema_migrations (version, name) VALUES (?, ?)")
        for (version, migration) in known where version > applied {
            try connection.transaction {
                try connection.execute(migration.sql, context: "applying migration \(migration.fileName)")
                record.bind(1, Int64(version))
                record.bind(2, migration.fileName)
                try record.run()
            }
            appliedNow.append(version)
        }
        return appliedNow
    }
}
