import ArgumentParser
import Foundation
import PerfgateClient

/// `perfgate trends`: asks a running perfgate whether a percentile got worse than before.
struct TrendsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trends",
        abstract: "Print a percentile now against the same window earlier, from a running perfgate.",
        discussion: "Example: perfgate trends --metric backend_ttfb_seconds --by provider,model"
    )

    @OptionGroup var server: ServerOptions
    @Option(help: "backend_ttfb_seconds, streaming_duration_seconds, frontend_processing_seconds or request_stage_duration_seconds") var metric: String
    @Option(help: "0 to 1 (default 0.95)") var quantile: String?
    @Option(help: "Whole minutes, e.g. 5m (default 5m)") var window: String?
    @Option(help: "How far back the comparison lies, e.g. 1h or 1d (default 1h)") var offset: String?
    @Option(help: "Comma-separated labels to group by, e.g. provider,model") var by: String?
    @Option(help: "Relative increase counted as degrading (default 0.5)") var threshold: String?
    @Option(name: .customLong("min-count"), help: "Fewest events a window needs (default 10)") var minCount: String?
    @Option(name: .customLong("label"), help: "label=value to keep, repeatable, e.g. provider=openrouter") var labels: [String] = []
    @Flag(help: "Print perfgate's JSON answer instead of a table") var json = false

    func run() async throws {
        var parameters: [(String, String)] = [("metric", metric)]
        for (name, value) in [("quantile", quantile), ("window", window), ("offset", offset), ("by", by), ("threshold", threshold), ("min_count", minCount)] {
            if let value { parameters.append((name, value)) }
        }
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--label \(label): expected label=value") }
            parameters.append((parts[0], parts[1]))
        }
        try await server.reportingFailures {
            let answer = try await server.api.trends(parameters)
            if json {
                print(String(decoding: answer, as: UTF8.self))
            } else if let table = TrendTable.render(answer) {
                print(table, terminator: "")
            } else {
                print(String(decoding: answer, as: UTF8.self))
            }
        }
    }
}
