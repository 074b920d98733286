import ArgumentParser
import Foundation
import Logging
import PerfgateServer

/// `perfgate check`: reads the store back and reports its damaged rows; exit status 1 when any.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Read every row of the store back and report the damaged ones; with --quarantine, set them aside.",
        discussion: """
            Takes the same settings as serve (--db names the store; the bucket layouts must be the \
            server's), and opens the store as a server does: run it while the server is stopped. A \
            damaged row is one a server skips where it reads it: its counts are lost, the rest is \
            served. With --quarantine, every damaged row (of every replica, in a shared store) is \
            moved, as it was, into a quarantined_* table of the store, which servers never read. \
            Exit status 1 when damaged rows are found and left in place, 0 otherwise.
            """
    )

    @Flag(help: "Move the damaged rows into quarantined_* tables, which servers never read")
    var quarantine = false

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
        let found = try await checkStore(resolved.configuration, quarantine: quarantine, logger: logger)
        print("\(resolved.configuration.storeDescription): \(found.series) series read, \(found.damaged) damaged rows")
        for example in found.examples { print("  \(example)") }
        if found.damaged > found.examples.count { print("  and \(found.damaged - found.examples.count) more") }
        if quarantine {
            print("\(found.quarantined.count) rows moved to the quarantined_* tables")
            for row in found.quarantined.prefix(20) { print("  \(row)") }
            if found.quarantined.count > 20 { print("  and \(found.quarantined.count - 20) more") }
        } else if found.damaged > 0 {
            print("run again with --quarantine to set them aside")
            throw ExitCode(1)
        }
    }
}
