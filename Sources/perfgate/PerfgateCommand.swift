import ArgumentParser
import PerfgateServer

/// The `perfgate` command: `serve` by default.
@main
struct PerfgateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perfgate",
        abstract: "Aggregates request-stage timings into Prometheus histograms, with durable minute windows and trends.",
        version: perfgateVersion,
        subcommands: [ServeCommand.self, SendCommand.self, TrendsCommand.self, RoutesCommand.self, CheckCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
