import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PerfgateCore
import PerfgateTestSupport
import Testing

@testable import PerfgateServer

/// `POST /v1/traces` through the router: how spans that wait for their root are kept, completed
/// and given up. The wire formats and the real SDK are tested in Tests/live/test_otlp.py.
@Suite struct TracesTests {
    static func span(_ id: UInt64, parent: UInt64 = 0, name: String, seconds: Double, _ attributes: [OTLPSpan.Key: String] = [:]) -> OTLPSpan {
        var span = OTLPSpan(traceID: TraceID(high: 1, low: 2), spanID: id)
        span.parentSpanID = parent
        span.name = name
        span.startNanoseconds = UInt64(testNow.nanoseconds - 10_000_000_000)
        span.endNanoseconds = span.startNanoseconds + UInt64(seconds * 1e9)
        for (key, value) in attributes { span.attributes[key] = value }
        return span
    }

    static let root = span(1, name: "POST /chat", seconds: 3, [.httpRoute: "/chat", .providerName: "openrouter", .requestModel: "gpt-4o"])
    static let child = span(2, parent: 1, name: "backend_fetch", seconds: 1.5)

    func post(_ spans: [OTLPSpan], _ client: some TestClientProtocol) async throws -> HTTPResponse.Status {
        try await client.execute(
            uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"], body: ByteBuffer(bytes: OTLPExports.request(spans))
        ) { $0.status }
    }

    @Test func aRootInTheSameCommitAsItsChildCompletesTheTrace() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(store: store) { components, client in
            store.holdCommits(true)
            async let first = post([Self.span(9, parent: 8, name: "warm-up", seconds: 1)], client)
            while components.queue.queuedEvents < 1 { try await Task.sleep(for: .milliseconds(5)) }
            // Queued behind the held commit, the child and then its root go into one transaction.
            async let child = post([Self.child], client)
            while components.queue.queuedEvents < 2 { try await Task.sleep(for: .milliseconds(5)) }
            async let root = post([Self.root], client)
            while components.queue.queuedEvents < 3 { try await Task.sleep(for: .milliseconds(5)) }
            store.holdCommits(false)
            #expect(try await [first, child, root] == [.ok, .ok, .ok])
            let lines = try await client.metricLines()
            #expect(sample(lines, #"backend_ttfb_seconds_sum{provider="openrouter",model="gpt-4o",endpoint="/chat"}"#) == "1.5")
            #expect(sample(lines, "perfgate_commits_total") == "2")
            // The warm-up span's parent never came: it still waits.
            #expect(sample(lines, "perfgate_otlp_waiting_traces") == "1")
        }
    }

    @Test func spansWhoseRootDoesNotComeInTimeAreDroppedAndCounted() async throws {
        let harness = Harness { $0.traceWaitSeconds = 60 }
        defer { harness.removeFiles() }
        try await harness.run { components, client in
            #expect(try await post([Self.child, Self.span(3, parent: 2, name: "stream_processing", seconds: 2)], client) == .ok)
            await components.pruner.pruneOnce()
            #expect(sample(try await client.metricLines(), "perfgate_otlp_waiting_traces") == "1")
            harness.clock.advance(seconds: 61)
            await components.pruner.pruneOnce()
            var lines = try await client.metricLines()
            #expect(sample(lines, "perfgate_otlp_spans_dropped_total") == "2")
            #expect(sample(lines, "perfgate_otlp_waiting_traces") == "0")
            // The root arriving after that is a trace with nothing to count, known as such once
            // no later span can complete it.
            #expect(try await post([Self.root], client) == .ok)
            lines = try await client.metricLines()
            #expect(sample(lines, "perfgate_otlp_waiting_traces") == "1")
            #expect(sample(lines, #"perfgate_otlp_traces_total{outcome="no_stages"}"#) == "0")
            harness.clock.advance(seconds: 61)
            await components.pruner.pruneOnce()
            lines = try await client.metricLines()
            #expect(sample(lines, #"perfgate_otlp_traces_total{outcome="no_stages"}"#) == "1")
            #expect(sample(lines, "perfgate_otlp_spans_dropped_total") == "2")
            #expect(sample(lines, "perfgate_otlp_waiting_traces") == "0")
            #expect(lines.allSatisfy { !$0.hasPrefix("backend_ttfb_seconds_count{") })
        }
    }

    /// Traces of thousands of spans each expire in passes of a bounded number of spans, between
    /// commits: one pass of 512 such traces held 2 million spans (300 MB, seconds of every client's time).
    @Test func expiryGoesInPassesOfBoundedSpans() async throws {
        let harness = Harness { $0.traceWaitSeconds = 60 }
        defer { harness.removeFiles() }
        try await harness.run { components, client in
            for trace in UInt64(1)...5 {
                let spans = (UInt64(2)...4_001).map { id in
                    var span = Self.span(id, parent: 1, name: "work", seconds: 0.001)
                    span.traceID = TraceID(high: 9, low: trace)
                    return span
                }
                #expect(try await post(spans, client) == .ok)
            }
            #expect(sample(try await client.metricLines(), "perfgate_otlp_waiting_spans") == "20000")
            harness.clock.advance(seconds: 61)
            var passes: [Int] = []
            while true {
                let pass = try await components.queue.dropWaitingSpans(receivedBefore: harness.clock.now().seconds - 60)
                guard pass.more else { break }
                passes.append(pass.droppedSpans)
            }
            #expect(passes.allSatisfy { $0 <= Committer.spansPerExpiry } && passes.reduce(0, +) == 20_000 && passes.count >= 3)
            #expect(sample(try await client.metricLines(), "perfgate_otlp_waiting_spans") == "0")
        }
    }

    /// An export's commits are sized by what each trace will assemble, its waiting spans included:
    /// 240 roots of traces holding 4,000 waiting spans each were one commit of 960,000 spans.
    @Test func commitsAreSizedByTheSpansEachTraceAssembles() {
        let roots = (UInt64(1)...240).map { trace -> OTLPSpan in
            var span = Self.span(1, name: "POST", seconds: 1)
            span.traceID = TraceID(high: 7, low: trace)
            return span
        }
        let alone = TracesController<BasicRequestContext>.commitGroups(roots, maxSpansPerTrace: 4_096)
        #expect(alone.groups.count == 1)
        let held = TracesController<BasicRequestContext>.commitGroups(roots, maxSpansPerTrace: 4_096) { traces in
            Dictionary(uniqueKeysWithValues: traces.map { ($0, 4_000) })
        }
        #expect(held.groups.count == 240 && held.groups.allSatisfy { $0.count == 1 })
    }

    /// A trace that would pass --max-spans-per-trace with an export's spans refuses those, and keeps
    /// the spans it held: they were acknowledged.
    @Test func aTraceAtItsLimitRefusesNewSpansAndKeepsItsOwn() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { components, client in
            func spans(_ ids: ClosedRange<UInt64>) -> [OTLPSpan] {
                ids.map { id in
                    var span = Self.span(id, parent: 1, name: "work", seconds: 0.001)
                    span.traceID = TraceID(high: 8, low: 1)
                    return span
                }
            }
            #expect(try await post(spans(2...4_001), client) == .ok)
            #expect(try await post(spans(4_002...4_201), client) == .ok)
            let lines = try await client.metricLines()
            #expect(sample(lines, "perfgate_otlp_waiting_spans") == "4000")
            #expect(sample(lines, #"perfgate_otlp_spans_refused_total{reason="trace_too_large"}"#) == "200")
        }
    }
}
