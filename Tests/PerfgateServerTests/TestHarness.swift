import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PerfgateCore
import Testing

@testable import PerfgateServer

/// 2026-11-29T04:00:30Z: half a minute into a minute, so small clock moves stay in it.
let testNow = Timestamp(seconds: 1_795_924_830)

/// A perfgate built exactly as `serve` builds it, on a temporary SQLite file and a manual clock.
struct Harness {
    let folder: String
    let clock: ManualWallClock
    var configuration: ServerConfiguration

    init(configure: (inout ServerConfiguration) -> Void = { _ in }) {
        folder = NSTemporaryDirectory() + "perfgate-server-" + UUID().uuidString
        clock = ManualWallClock(testNow)
        configuration = ServerConfiguration()
        configuration.databasePath = folder + "/perfgate.sqlite"
        configure(&configuration)
    }

    func removeFiles() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Builds the components (opening the store) and runs `body` against the router with services
    /// running; with `.live`, over a real socket on a free port (`client.port`).
    func run<Value: Sendable>(
        store: (any RollupStore)? = nil,
        _ setup: TestingSetup = .router,
        _ body: @Sendable (Components, any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        var logger = Logger(label: "perfgate-test")
        logger.logLevel = .warning
        var configuration = configuration
        configuration.port = 0
        let components = try await buildComponents(configuration: configuration, clock: clock, store: store, logger: logger)
        let app = try buildApplication(components, logger: logger)
        return try await app.test(setup) { client in try await body(components, client) }
    }
}

extension TestClientProtocol {
    /// POSTs a body to `/v1/events` and returns the status and parsed JSON answer.
    @discardableResult
    func postEvents(_ body: String, contentType: String? = "application/json", headers extra: HTTPFields = [:]) async throws -> (HTTPResponse.Status, JSONValue) {
        try await postEvents(Array(body.utf8), contentType: contentType, headers: extra)
    }

    @discardableResult
    func postEvents(_ body: [UInt8], contentType: String? = "application/json", headers extra: HTTPFields = [:]) async throws -> (HTTPResponse.Status, JSONValue) {
        var headers = extra
        if let contentType { headers[.contentType] = contentType }
        return try await execute(uri: "/v1/events", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { response in
            (response.status, try JSONValue.parse(Array(response.body.readableBytesView)))
        }
    }

    /// The `/metrics` page as lines.
    func metricLines() async throws -> [String] {
        try await execute(uri: "/metrics", method: .get) { response in
            String(buffer: response.body).split(separator: "\n").map(String.init)
        }
    }

    /// GETs a JSON endpoint.
    func getJSON(_ uri: String) async throws -> (HTTPResponse.Status, JSONValue) {
        try await execute(uri: uri, method: .get) { response in
            (response.status, try JSONValue.parse(Array(response.body.readableBytesView)))
        }
    }
}

/// The value of one sample line, found by its exact name and labels.
func sample(_ lines: [String], _ series: String) -> String? {
    lines.first { $0.hasPrefix(series + " ") }.map { String($0.dropFirst(series.count + 1)) }
}

/// Lines of the seed's five families only (perfgate_* self-metrics change with every request).
func seedLines(_ lines: [String]) -> [String] {
    lines.filter { !$0.hasPrefix("perfgate_") && !$0.contains(" perfgate_") }
}

func eventJSON(
    endpoint: String = "/v1/chat/completions", provider: String = "openrouter", model: String = "gpt-4o",
    stages: [String: Double], timestamp: Timestamp? = nil
) -> String {
    let stageText = stages.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ")
    let time = timestamp.map { ", \"timestamp\": \"\(RFC3339.format($0))\"" } ?? ""
    return #"{"endpoint": "\#(endpoint)", "provider": "\#(provider)", "model": "\#(model)", "stages": {\#(stageText)}\#(time)}"#
}
