import ArgumentParser
import Foundation
import PerfgateClient

/// The options every client command shares: which perfgate to talk to, and the token to show it.
struct ServerOptions: ParsableArguments {
    @Option(help: "The perfgate to talk to (env PERFGATE_URL; default http://127.0.0.1:9095)") var url: String?
    @Option(help: "Bearer token (env PERFGATE_TOKEN): send needs the ingest role, trends the read role") var token: String?

    /// The client these options name.
    var api: PerfgateAPI { PerfgateAPI(baseURL: url, token: token) }

    /// Runs `body`; what perfgate or the network refused is printed on standard error, exit status 1.
    func reportingFailures(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as PerfgateError {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
