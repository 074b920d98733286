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
            Every option can also be set by its environment variable or in the JSON file given to \
            --config; a flag wins over the environment, which wins over the file.
            """
    )

    @Option(help: ArgumentHelp(ServeSettings.configHelp)) var config: String?
    @Option(help: ArgumentHelp(help("host"))) var host: String?
    @Option(help: ArgumentHelp(help("port"))) var port: String?
    @Option(help: ArgumentHelp(help("db"))) var db: String?
    @Option(help: ArgumentHelp(help("retention"))) var retention: String?
    @Option(name: .customLong("percentage-window"), help: ArgumentHelp(help("percentage-window"))) var percentageWindow: String?
    @Option(help: ArgumentHelp(help("durability"))) var durability: String?
    @Option(name: .customLong("max-body-size"), help: ArgumentHelp(help("max-body-size"))) var maxBodySize: String?
    @Option(name: .customLong("max-inflated-body-size"), help: ArgumentHelp(help("max-inflated-body-size"))) var maxInflatedBodySize: String?
    @Option(name: .customLong("max-events-per-batch"), help: ArgumentHelp(help("max-events-per-batch"))) var maxEventsPerBatch: String?
    @Option(name: .customLong("max-label-length"), help: ArgumentHelp(help("max-label-length"))) var maxLabelLength: String?
    @Option(name: .customLong("max-series-per-metric"), help: ArgumentHelp(help("max-series-per-metric"))) var maxSeriesPerMetric: String?
    @Option(name: .customLong("max-queued-events"), help: ArgumentHelp(help("max-queued-events"))) var maxQueuedEvents: String?
    @Option(name: .customLong("max-connections"), help: ArgumentHelp(help("max-connections"))) var maxConnections: String?
    @Option(name: .customLong("request-timeout"), help: ArgumentHelp(help("request-timeout"))) var requestTimeout: String?
    @Option(name: .customLong("series-ttl"), help: ArgumentHelp(help("series-ttl"))) var seriesTTL: String?
    @Option(name: .customLong("idempotency-ttl"), help: ArgumentHelp(help("idempotency-ttl"))) var idempotencyTTL: String?
    @Option(name: .customLong("tls-certificate"), help: ArgumentHelp(help("tls-certificate"))) var tlsCertificate: String?
    @Option(name: .customLong("tls-key"), help: ArgumentHelp(help("tls-key"))) var tlsKey: String?
    @Option(name: .customLong("tokens-file"), help: ArgumentHelp(help("tokens-file"))) var tokensFile: String?
    @Option(name: .customLong("ingest-tokens"), help: ArgumentHelp(help("ingest-tokens"))) var ingestTokens: String?
    @Option(name: .customLong("read-tokens"), help: ArgumentHelp(help("read-tokens"))) var readTokens: String?
    @Option(name: .customLong("admin-tokens"), help: ArgumentHelp(help("admin-tokens"))) var adminTokens: String?
    @Option(name: .customLong("log-level"), help: ArgumentHelp(help("log-level"))) var logLevel: String?
    @Option(help: ArgumentHelp(ServeSettings.bucketsHelp)) var buckets: [String] = []

    private static func help(_ name: String) -> String {
        ServeSettings.all.first { $0.name == name }!.help
    }

    private var flagValues: [String: String] {
        let pairs: [(String, String?)] = [
            ("host", host), ("port", port), ("db", db), ("retention", retention),
            ("percentage-window", percentageWindow), ("durability", durability),
            ("max-body-size", maxBodySize), ("max-inflated-body-size", maxInflatedBodySize),
            ("max-events-per-batch", maxEventsPerBatch), ("max-label-length", maxLabelLength),
            ("max-series-per-metric", maxSeriesPerMetric), ("max-queued-events", maxQueuedEvents),
            ("max-connections", maxConnections), ("request-timeout", requestTimeout), ("series-ttl", seriesTTL), ("idempotency-ttl", idempotencyTTL),
            ("tls-certificate", tlsCertificate), ("tls-key", tlsKey), ("tokens-file", tokensFile), ("ingest-tokens", ingestTokens), ("read-tokens", readTokens),
            ("admin-tokens", adminTokens), ("log-level", logLevel),
        ]
        return Dictionary(uniqueKeysWithValues: pairs.compactMap { name, value in value.map { (name, $0) } })
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var layers: [ServeSettings.Layer] = []
        if let path = config ?? environment["PERFGATE_CONFIG"] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read the config file \(path)")
            }
            layers.append(try ServeSettings.Layer.file(Array(data), path: path))
        }
        layers.append(.environment(environment))
        layers.append(.flags(flagValues, buckets: buckets))
        let resolved: ServeSettings.Resolved
        do {
            resolved = try ServeSettings.resolve(layers)
        } catch {
            throw ValidationError(error.description)
        }

        var logger = Logger(label: "perfgate")
        logger.logLevel = resolved.logLevel
        let settings = resolved.configuration
        logger.info(
            "starting perfgate \(perfgateVersion)",
            metadata: [
                "http.address": "\(settings.host):\(settings.port)",
                "store.path": "\(settings.databasePath)",
                "store.durability": "\(settings.durability)",
            ]
        )
        let app: any ApplicationProtocol
        do {
            app = try buildApplication(configuration: settings, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(2)
        }
        try await app.runService()
        logger.info("stopped")
    }
}
