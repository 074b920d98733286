import ArgumentParser
import Foundation
import PerfgateClient

/// `perfgate send`: posts one event from a shell, e.g. from a deploy script or a cron job.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Post one event's stage timings to a running perfgate.",
        discussion: "Example: perfgate send --endpoint /v1/chat/completions --provider openrouter --model gpt-4o --stage backend_fetch=1.7 --stage stream_processing=1.3"
    )

    @OptionGroup var server: ServerOptions
    @Option(help: "The request's route, e.g. /v1/chat/completions") var endpoint: String
    @Option(help: "The backend provider") var provider: String?
    @Option(help: "The backend model") var model: String?
    @Option(name: .customLong("stage"), help: "name=seconds, repeatable, e.g. backend_fetch=1.7") var stages: [String]
    @Option(help: "When the request happened: Unix seconds (default: now)") var timestamp: Double?

    func validate() throws {
        guard !stages.isEmpty else { throw ValidationError("give at least one --stage name=seconds") }
        _ = try parsedStages()
    }

    private func parsedStages() throws -> [(name: String, seconds: Double)] {
        try stages.map { text in
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, let seconds = Double(parts[1]) else {
                throw ValidationError("--stage \(text): expected name=seconds, e.g. backend_fetch=1.7")
            }
            return (parts[0], seconds)
        }
    }

    func run() async throws {
        let event = TimingEvent(
            endpoint: endpoint, provider: provider, model: model, stages: try parsedStages(),
            timestamp: timestamp.map { Date(timeIntervalSince1970: $0) } ?? Date()
        )
        let api = server.api
        try await server.reportingFailures {
            let answer = try await api.post([event], idempotencyKey: UUID().uuidString)
            guard answer.accepted == 1 else {
                FileHandle.standardError.write(Data(("perfgate refused the event:\n" + answer.errors.joined(separator: "\n") + "\n").utf8))
                throw ExitCode(1)
            }
            print("sent: 1 event to \(api.baseURL)")
            for warning in answer.warnings { print("warning: \(warning)") }
        }
    }
}
