import Foundation
import PackagePlugin

/// Compiles the top-level `migrations/*.sql` files (SQLite) and `migrations/postgres/*.sql` into
/// the target as Swift string literals, so the schemas travel inside the binary and perfgate runs
/// from any working directory.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let folder = context.package.directoryURL.appending(path: "migrations")
        let inputs = try [folder, folder.appending(path: "postgres")].flatMap { folder in
            try FileManager.default.contentsOfDirectory(atPath: folder.path())
                .filter { $0.hasSuffix(".sql") }
                .sorted()
                .map { folder.appending(path: $0) }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) migrations",
                executable: try context.tool(named: "MigrationEmbedder").url,
                arguments: [output.path()] + inputs.map { $0.path() },
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
