import Foundation
import Hummingbird
import HummingbirdTesting
import PerfgateClient
import PerfgateCore
import PerfgateHummingbird
import PerfgateTestSupport
import Testing

@testable import PerfgateServer

/// The Swift client (PerfgateClient, PerfgateHummingbird) against perfgate on a real socket.
@Suite struct SwiftClientTests {
    /// A harness whose clock reads the real time, since the client stamps events with it.
    func liveHarness(_ configure: (inout ServerConfiguration) -> Void = { _ in }) -> Harness {
        let harness = Harness(configure: configure)
        harness.clock.set(Timestamp(seconds: Int64(Date().timeIntervalSince1970)))
        return harness
    }

    func sender(port: Int?, _ configure: (inout EventSender.Configuration) -> Void = { _ in }) -> EventSender {
        var configuration = EventSender.Configuration()
        configuration.flushInterval = .milliseconds(50)
        configuration.maxBackoff = .milliseconds(200)
        configure(&configuration)
        return EventSender(api: PerfgateAPI(baseURL: "http://127.0.0.1:\(port ?? 0)"), configuration: configuration)
    }

    @Test func trackedStagesArriveAsTheSeedSeries() async throws {
        let harness = liveHarness()
        defer { harness.removeFiles() }
        try await harness.run(.live) { _, client in
            let sender = sender(port: client.port)
            for _ in 0..<3 {
                let tracker = PerformanceTracker(endpoint: "/v1/chat/completions", sender: sender)
                try await tracker.stage("request_parsing") { try await Task.sleep(for: .milliseconds(1)) }
                await tracker.stage("auth_validation") {}
                let chunks = try await tracker.backendRequest(provider: "openrouter", model: "gpt-4o") {
                    try await Task.sleep(for: .milliseconds(20))
                    return ["a", "b"]
                }
                try await tracker.streaming { for _ in chunks { try await Task.sleep(for: .milliseconds(5)) } }
                tracker.recordPercentages()
                tracker.recordPercentages()  // once only
            }
            #expect(await sender.flush(timeout: .seconds(10)))
            #expect(sender.statistics == EventSender.Statistics(sent: 3, dropped: 0, rejected: 0, retries: 0))
            let lines = try await client.metricLines()
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) == "3")
            #expect(sample(lines, #"streaming_duration_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) == "3")
            #expect(sample(lines, #"frontend_processing_seconds_count{endpoint="/v1/chat/completions"}"#) == "3")
            let ttfb = Double(sample(lines, #"backend_ttfb_seconds_sum{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) ?? "0") ?? 0
            #expect(ttfb >= 0.06 && ttfb < 1)
            await sender.shutdown()
        }
    }

    @Test func aBatchRefusedWith503IsRetriedUnderOneKeyAndCountedOnce() async throws {
        let store = InMemoryRollupStore()
        let harness = liveHarness()
        defer { harness.removeFiles() }
        try await harness.run(store: store, .live) { _, client in
            struct DiskFull: Error {}
            store.failCommits(with: DiskFull())
            let sender = sender(port: client.port)
            let tracker = PerformanceTracker(endpoint: "/retry", sender: sender)
            await tracker.backendRequest(provider: "p", model: "m") {}
            tracker.recordPercentages()
            while sender.statistics.retries < 2 { try await Task.sleep(for: .milliseconds(20)) }
            store.failCommits(with: nil)
            #expect(await sender.flush(timeout: .seconds(10)))
            #expect(sender.statistics.sent == 1)
            let lines = try await client.metricLines()
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="p",model="m",endpoint="/retry"}"#) == "1")
            await sender.shutdown()
        }
    }

    @Test func aFullQueueDropsInsteadOfBlockingAndShutdownGivesUp() async throws {
        // Nothing listens on port 9: every attempt fails, nothing blocks the caller.
        let sender = sender(port: 9) { $0.maxQueue = 5; $0.shutdownTimeout = .milliseconds(100) }
        let accepted = (0..<50).map { _ in sender.submit(TimingEvent(endpoint: "/x", stages: [("backend_fetch", 1)])) }
        #expect(accepted.filter { $0 }.count <= 5)
        #expect(sender.statistics.dropped >= 45)
        await sender.shutdown()
        #expect(!sender.submit(TimingEvent(endpoint: "/x", stages: [("backend_fetch", 1)])))
    }

    @Test func theMiddlewareTracksARouteUnderItsPattern() async throws {
        let harness = liveHarness()
        defer { harness.removeFiles() }
        try await harness.run(.live) { _, perfgate in
            let sender = sender(port: perfgate.port)
            let router = Router()
            router.add(middleware: PerformanceMiddleware(sender: sender))
            router.get("users/{id}") { _, context in
                await PerformanceTracker.current?.stage("auth_validation") {}
                return await PerformanceTracker.current?.backendRequest(provider: "db", model: "users") { context.parameters.get("id") ?? "" } ?? ""
            }
            router.get("plain") { _, _ in "ok" }
            let app = Application(router: router)
            try await app.test(.router) { client in
                for id in ["1", "2", "3"] { _ = try await client.execute(uri: "/users/\(id)", method: .get) { $0.status } }
                _ = try await client.execute(uri: "/plain", method: .get) { $0.status }
            }
            #expect(await sender.flush(timeout: .seconds(10)))
            let lines = try await perfgate.metricLines()
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="db",model="users",endpoint="/users/{id}"}"#) == "3")
            #expect(sample(lines, #"request_stage_duration_seconds_count{stage="auth_validation",endpoint="/users/{id}"}"#) == "3")
            #expect(sample(lines, #"request_stage_duration_seconds_count{stage="handler",endpoint="/plain"}"#) == "1")
            await sender.shutdown()
        }
    }
}

/// Streamed response bodies through `PerformanceMiddleware`, in a real Hummingbird app on a real socket.
@Suite struct StreamedResponseTests {
    static let chunks = 5
    static let pause = Duration.milliseconds(60)

    /// A body written in `chunks` pieces with a pause before each: at least 300 ms of streaming.
    static func slowBody(_ timing: @escaping @Sendable (() async throws -> Void) async throws -> Void) -> ResponseBody {
        ResponseBody { writer in
            try await timing {
                for index in 0..<chunks {
                    try await Task.sleep(for: pause)
                    try await writer.write(ByteBuffer(string: "chunk \(index)\n"))
                }
            }
            try await writer.finish(nil)
        }
    }

    @Test func theEventWaitsForTheBodyAndCountsItsWritingAsStreaming() async throws {
        let harness = SwiftClientTests().liveHarness()
        defer { harness.removeFiles() }
        try await harness.run(.live) { _, perfgate in
            let sender = SwiftClientTests().sender(port: perfgate.port)
            let router = Router()
            router.add(middleware: PerformanceMiddleware(sender: sender))
            // The handler times the backend, then returns a body it does not time itself.
            router.get("untimed") { _, _ in
                await PerformanceTracker.current?.backendRequest(provider: "p", model: "untimed") {}
                return Response(status: .ok, body: Self.slowBody { try await $0() })
            }
            // The body times its own streaming through the tracker it finds while being written.
            router.get("timed") { _, _ in
                await PerformanceTracker.current?.backendRequest(provider: "p", model: "timed") {}
                return Response(status: .ok, body: Self.slowBody { write in
                    // Without the request's tracker the body fails, and the test sees it truncated.
                    guard let tracker = PerformanceTracker.current else { throw HTTPError(.internalServerError) }
                    try await tracker.streaming { try await write() }
                })
            }
            // A whole buffer is not a stream: no streaming stage is made up for it.
            router.get("buffer") { _, _ in
                await PerformanceTracker.current?.backendRequest(provider: "p", model: "buffer") {}
                return "whole"
            }
            let app = Application(router: router)
            try await app.test(.live) { client in
                for uri in ["/untimed", "/timed", "/buffer"] {
                    let body = try await client.execute(uri: uri, method: .get) { String(buffer: $0.body) }
                    #expect(uri == "/buffer" ? body == "whole" : body.hasPrefix("chunk 0\n") && body.hasSuffix("chunk 4\n"))
                }
            }
            #expect(await sender.flush(timeout: .seconds(10)))
            let lines = try await perfgate.metricLines()
            for model in ["untimed", "timed"] {
                let labels = #"provider="p",model="\#(model)",endpoint="/\#(model)""#
                #expect(sample(lines, "streaming_duration_seconds_count{\(labels)}") == "1", "\(model)")
                let seconds = try #require(sample(lines, "streaming_duration_seconds_sum{\(labels)}").flatMap(Double.init))
                // At least the pauses; well under what a stuck write would take.
                #expect(seconds >= 0.3 && seconds < 5, "\(model): \(seconds) s")
                #expect(sample(lines, "backend_ttfb_seconds_count{\(labels)}") == "1")
            }
            #expect(sample(lines, #"streaming_duration_seconds_count{provider="p",model="buffer",endpoint="/buffer"}"#) == nil)
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="p",model="buffer",endpoint="/buffer"}"#) == "1")
            await sender.shutdown()
        }
    }
}
