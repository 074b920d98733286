import ArgumentParser
import Foundation
import Logging
import PerfgateServer

/// `perfgate check`: reads the store back and reports its damaged rows; exit status 1 when any.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Read every row of the store back and report the damaged ones.",
        discussion: """
            Takes the same settings as serve (--db names the store; the bucket layouts must be the \
            server's), and opens the store as a server does: run it while the server is stopped. A \
            damaged row is one a server skips where it reads it: its counts are lost, the rest is \
            served. Exit status 1 when any is found, 0 when none.
            """
    )

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings, as for serve", valueName: "settings", visibility: .hidden))
    var arguments: [String] = []

    func run() async throws {
        let resolved: ServeSettings.Resolved
        do {
            resolved = try ServeSettings.resolve([.environment(ProcessInfo.processInfo.environment), try ServeSettings.Flags(arguments).layer])
        } catch let error as ConfigurationError {
            throw ValidationError(error.message)
        }
        let path = resolved.configuration.databasePath
        // A check reads a store; it never makes one.
        if !path.hasPrefix("postgres://"), !path.hasPrefix("postgresql://"), !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("no store at \(path)")
        }
        var logger = Logger(label: "perfgate")
        logger.logLevel = .warning
        let found = try await checkStore(resolved.configuration, logger: logger)
        print("\(resolved.configuration.storeDescription): \(found.series) series read, \(found.rows) damaged rows")
        for example in found.examples { print("  \(example)") }
        if found.rows > found.examples.count { print("  and \(found.rows - found.examples.count) more") }
        if found.rows > 0 { throw ExitCode(1) }
    }
}
