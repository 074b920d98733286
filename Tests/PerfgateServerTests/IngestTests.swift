import HTTPTypes
import HummingbirdTesting
import NIOCore
import PerfgateCore
import PerfgateTestSupport
import Testing

@testable import PerfgateServer

@Suite struct IngestTests {
    let ttfb = #"backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#

    @Test func appliesTheValidEventsOfABatchAndListsTheRest() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let (status, answer) = try await client.postEvents(
                "[\(eventJSON(stages: ["backend_fetch": 1])), \(eventJSON(stages: ["backend_fetch": -1]))]"
            )
            #expect(status == .ok)
            #expect(answer["accepted"] == .number("1"))
            #expect(answer["rejected"] == .number("1"))
            #expect(answer["errors"]?[0]?["index"] == .number("1"))
            #expect(answer["errors"]?[0]?["field"] == .string("stages.backend_fetch"))
            #expect(answer["errors"]?[0]?["error"] == .string("stages.backend_fetch: must not be negative (got -1.0)"))
            let lines = try await client.metricLines()
            #expect(sample(lines, ttfb) == "1")
            #expect(sample(lines, #"perfgate_events_rejected_total{reason="invalid_duration"}"#) == "1")
        }
    }

    @Test func answers422WhenEveryEventIsRejected() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let (status, answer) = try await client.postEvents(#"[{"stages": {"x": 1}}]"#)
            #expect(status == .unprocessableContent)
            #expect(answer["errors"]?[0]?["error"]?.stringValue?.hasPrefix("endpoint: is required") == true)
        }
    }

    @Test func aStoreThatCannotCommitGets503AndNothingIsApplied() async throws {
        struct DiskFull: Error, CustomStringConvertible { var description: String { "database or disk is full" } }
        let store = InMemoryRollupStore()
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(store: store) { components, client in
            store.failCommits(with: DiskFull())
            let response = try await client.execute(
                uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: eventJSON(stages: ["backend_fetch": 1]))
            ) { $0 }
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] == "5")
            #expect(String(buffer: response.body).contains("database or disk is full"))
            let readiness = try await client.getJSON("/readyz")
            #expect(readiness.0 == .serviceUnavailable)
            #expect(readiness.1["reason"]?.stringValue == "the store failed in the last 10 seconds")
            let unchanged = try await client.metricLines()
            #expect(sample(unchanged, ttfb) == nil)

            store.failCommits(with: nil)
            #expect(try await client.postEvents(eventJSON(stages: ["backend_fetch": 1])).0 == .ok)
            let lines = try await client.metricLines()
            #expect(sample(lines, ttfb) == "1")
            #expect(sample(lines, "perfgate_commit_failures_total") == "1")
            #expect(sample(lines, #"perfgate_requests_rejected_total{reason="store_error"}"#) == "1")
        }
    }

    @Test func seriesPastTheLimitAreCountedUnderOverflow() async throws {
        let harness = Harness { $0.maxSeriesPerMetric = 2 }
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            for model in ["a", "b"] {
                try await client.postEvents(eventJSON(model: model, stages: ["backend_fetch": 1]))
            }
            let (status, answer) = try await client.postEvents(
                "[\(eventJSON(model: "c", stages: ["backend_fetch": 1])), \(eventJSON(model: "d", stages: ["backend_fetch": 2]))]"
            )
            #expect(status == .ok)
            #expect(
                answer["warnings"]?[0]?.stringValue
                    == "backend_ttfb_seconds holds its limit of 2 series; 2 observations were counted under the __overflow__ series"
            )
            let lines = try await client.metricLines()
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="__overflow__",model="__overflow__",endpoint="__overflow__"}"#) == "2")
            #expect(sample(lines, #"perfgate_series{metric="backend_ttfb_seconds"}"#) == "3")
            #expect(sample(lines, #"perfgate_series_overflow_total{metric="backend_ttfb_seconds"}"#) == "2")
        }
    }

    @Test func scrapesAreGzippedWhenAsked() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            try await client.postEvents(eventJSON(stages: ["backend_fetch": 1]))
            let plain = try await client.execute(uri: "/metrics", method: .get) { Array($0.body.readableBytesView) }
            try await client.execute(uri: "/metrics", method: .get, headers: [.acceptEncoding: "gzip"]) { response in
                #expect(response.headers[.contentEncoding] == "gzip")
                #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
                let inflated = try Array(response.body.readableBytesView).withUnsafeBytes { try Gzip.inflate($0, limit: 1 << 24) }
                // The commit-duration histogram may differ between two scrapes; the seed families may not.
                #expect(seedLines(String(decoding: inflated, as: UTF8.self).split(separator: "\n").map(String.init))
                    == seedLines(String(decoding: plain, as: UTF8.self).split(separator: "\n").map(String.init)))
            }
            try await client.execute(uri: "/metrics", method: .get, headers: [.acceptEncoding: "gzip;q=0, identity"]) { response in
                #expect(response.headers[.contentEncoding] == nil)
            }
        }
    }

    @Test func livenessAndReadiness() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let alive = try await client.getJSON("/healthz")
            #expect(alive.0 == .ok && alive.1 == .object([("status", .string("ok"))]))
            let ready = try await client.getJSON("/readyz")
            #expect(ready.0 == .ok && ready.1 == .object([("ready", .bool(true))]))
        }
    }
}

@Suite struct SeriesOrderTests {
    /// Series are listed in label order however they arrived, before and after a restart
    /// (the live state keeps the order as series are added, so scrapes never sort).
    @Test func seriesAreListedInLabelOrderWhateverTheArrivalOrder() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        let models = ["m5", "m1", "m9", "m3", "m7", "m2"]
        @Sendable func ttfbModels(_ lines: [String]) -> [String] {
            lines.filter { $0.hasPrefix("backend_ttfb_seconds_count{") }.compactMap { line in
                line.split(separator: "\"").dropFirst(3).first.map(String.init)
            }
        }
        let live = try await harness.run { _, client in
            for model in models {
                _ = try await client.postEvents(eventJSON(model: model, stages: ["backend_fetch": 1]))
            }
            return ttfbModels(try await client.metricLines())
        }
        #expect(live == models.sorted())
        let restarted = try await harness.run { _, client in ttfbModels(try await client.metricLines()) }
        #expect(restarted == models.sorted())
    }
}

@Suite struct BackpressureTests {
    /// A stalled store fills the write queue: past its bound a batch is refused whole with 503
    /// and Retry-After, /readyz says why while it is nearly full, and once the store moves again
    /// everything acknowledged is applied and nothing refused is.
    @Test func aFullQueueRefusesWithRetryAfterAndReadinessFollowsIt() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness {
            $0.limits.maxEventsPerBatch = 10
            $0.maxQueuedEvents = 10
        }
        defer { harness.removeFiles() }
        try await harness.run(store: store) { components, client in
            store.holdCommits(true)
            let one = eventJSON(stages: ["backend_fetch": 1])
            async let first = client.postEvents(one)
            while components.queue.queuedEvents < 1 { try await Task.sleep(for: .milliseconds(5)) }
            async let second = client.postEvents("[" + Array(repeating: one, count: 9).joined(separator: ",") + "]")
            while components.queue.queuedEvents < 10 { try await Task.sleep(for: .milliseconds(5)) }

            let refused = try await client.execute(
                uri: "/v1/events", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: one)
            ) { $0 }
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.retryAfter] == "1")
            #expect(String(buffer: refused.body).contains("10 events queued, limit 10"))
            let readiness = try await client.getJSON("/readyz")
            #expect(readiness.0 == .serviceUnavailable)
            #expect(readiness.1["reason"]?.stringValue == "the write queue is near its limit")

            store.holdCommits(false)
            #expect(try await first.0 == .ok)
            #expect(try await second.0 == .ok)
            #expect(try await client.getJSON("/readyz").0 == .ok)
            let lines = try await client.metricLines()
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) == "10")
            #expect(sample(lines, #"perfgate_requests_rejected_total{reason="overloaded"}"#) == "1")
        }
    }

    /// A request that finds the writer idle commits itself; the requests arriving during its
    /// commit are committed together, in one more transaction, and all are counted.
    @Test func requestsArrivingDuringACommitShareTheNextOne() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(store: store) { components, client in
            store.holdCommits(true)
            let one = eventJSON(stages: ["backend_fetch": 1])
            async let first = client.postEvents(one)
            while components.queue.queuedEvents < 1 { try await Task.sleep(for: .milliseconds(5)) }
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<20 { group.addTask { try await client.postEvents(one).0 } }
                while components.queue.queuedEvents < 21 { try await Task.sleep(for: .milliseconds(5)) }
                store.holdCommits(false)
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await first.0 == .ok)
            #expect(statuses == Array(repeating: .ok, count: 20))
            let lines = try await client.metricLines()
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) == "21")
            #expect(sample(lines, "perfgate_commits_total") == "2")
        }
    }
}
