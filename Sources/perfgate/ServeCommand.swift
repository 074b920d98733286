import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PerfgateServer

/// `perfgate serve`: runs the service until SIGTERM or SIGINT, then drains and exits.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the perfgate service.",
        discussion: """
            Every setting can also be set by its environment variable or in the JSON file given to \
            --config; a flag wins over the environment, which wins over the file.

            SETTINGS:
            \(ServeSettings.helpText)
            """
    )

    /// The settings, read by `ServeSettings.Flags` from the table that declares them.
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings, listed above", valueName: "settings", visibility: .hidden))
    var arguments: [String] = []

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let resolved: ServeSettings.Resolved
        do {
            let flags = try ServeSettings.Flags(arguments)
            var layers: [ServeSettings.Layer] = []
            if let path = flags.config ?? environment["PERFGATE_CONFIG"] {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ConfigurationError("cannot read the config file \(path)")
                }
                layers.append(try ServeSettings.Layer.file(Array(data), path: path))
            }
            layers.append(.environment(environment))
            layers.append(flags.layer)
            resolved = try ServeSettings.resolve(layers)
        } catch let error as ConfigurationError {
            throw ValidationError(error.message)
        }

        var logger = Logger(label: "perfgate")
        logger.logLevel = resolved.logLevel
        let settings = resolved.configuration
        logger.info(
            "starting perfgate \(perfgateVersion)",
            metadata: [
                "http.address": "\(settings.host):\(settings.port)",
                "store": "\(settings.storeDescription)",
                "store.durability": "\(settings.durability)",
            ]
        )
        let openFiles = OpenFileLimit.raise()
        if openFiles < settings.maxConnections + OpenFileLimit.reserve {
            logger.warning(
                "the open-file limit is below --max-connections and what the store needs; past it the kernel refuses connections perfgate would accept",
                metadata: ["limit.open_files": "\(openFiles)", "limit.connections": "\(settings.maxConnections)"]
            )
        }
        let app: any ApplicationProtocol
        do {
            app = try await buildApplication(configuration: settings, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(2)
        }
        try await app.runService()
        logger.info("stopped")
    }
}
