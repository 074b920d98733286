import HTTPTypes
import HummingbirdTesting
import NIOCore
import PerfgateCore
import Testing

@testable import PerfgateServer

@Suite struct SeriesLifecycleTests {
    func request(_ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String) async throws -> (HTTPResponse.Status, JSONValue) {
        try await client.execute(uri: uri, method: method) { response in
            (response.status, try JSONValue.parse(Array(response.body.readableBytesView)))
        }
    }

    func ttfb(_ endpoint: String, model: String = "gpt-4o") -> String {
        #"backend_ttfb_seconds_count{provider="openrouter",model="\#(model)",endpoint="\#(endpoint)"}"#
    }

    @Test func deletingByLabelRemovesTheSeriesOfEveryFamilyFromMetricsAndStore() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        let stages = ["request_parsing": 0.01, "backend_fetch": 1, "stream_processing": 2]
        try await harness.run { _, client in
            try await client.postEvents("[\(eventJSON(endpoint: "/old", stages: stages)), \(eventJSON(endpoint: "/kept", stages: stages))]")
            let listed = try await request(client, .get, "/v1/series?endpoint=/old")
            #expect(listed.0 == .ok)
            // backend_ttfb, streaming, frontend, and three request_stage series.
            #expect(listed.1["matched"] == .number("6"))

            let (status, answer) = try await request(client, .delete, "/v1/series?endpoint=/old")
            #expect(status == .ok)
            #expect(answer["deleted"] == .number("6"))
            #expect(answer["series"]?[0]?["metric"] == .string("backend_ttfb_seconds"))
            #expect(answer["series"]?[0]?["labels"]?["endpoint"] == .string("/old"))
            let lines = try await client.metricLines()
            #expect(!lines.contains { $0.contains("\"/old\"") })
            #expect(sample(lines, ttfb("/kept")) == "1")
            #expect(sample(lines, #"perfgate_series_deleted_total{reason="admin"}"#) == "6")
            #expect(try await request(client, .delete, "/v1/series?endpoint=/old").1["deleted"] == .number("0"))

            // Sent again, the series starts from zero, as a counter reset.
            try await client.postEvents(eventJSON(endpoint: "/old", stages: ["backend_fetch": 1]))
            #expect(sample(try await client.metricLines(), ttfb("/old")) == "1")
        }
        // The store lost them too: a restart shows the same page.
        try await harness.run { _, client in
            let lines = try await client.metricLines()
            #expect(sample(lines, ttfb("/old")) == "1")
            #expect(sample(lines, #"stage_percentage{stage="backend_response",endpoint="/old"}"#) == "100")
            #expect(sample(lines, ttfb("/kept")) == "1")
        }
    }

    @Test func aNarrowSelectorLeavesTheRestOfTheEndpoint() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            try await client.postEvents("[\(eventJSON(model: "a", stages: ["backend_fetch": 1])), \(eventJSON(model: "b", stages: ["backend_fetch": 3]))]")
            let (_, answer) = try await request(client, .delete, "/v1/series?metric=backend_ttfb_seconds&model=a")
            #expect(answer["deleted"] == .number("1"))
            let lines = try await client.metricLines()
            #expect(sample(lines, ttfb("/v1/chat/completions", model: "a")) == nil)
            #expect(sample(lines, ttfb("/v1/chat/completions", model: "b")) == "1")
        }
    }

    @Test func deletedTimeLeavesTheStagePercentageWindow() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            try await client.postEvents(eventJSON(provider: "x", stages: ["backend_fetch": 3, "stream_processing": 1]))
            try await client.postEvents(eventJSON(provider: "y", stages: ["backend_fetch": 1]))
            let backend = #"stage_percentage{stage="backend_response",endpoint="/v1/chat/completions"}"#
            #expect(sample(try await client.metricLines(), backend) == "80")
            _ = try await request(client, .delete, "/v1/series?metric=backend_ttfb_seconds&provider=x")
            // Left: 1 s of backend (y) and 1 s of streaming (x's streaming series was not deleted).
            let after = try await client.metricLines()
            #expect(sample(after, backend) == "50")
        }
    }

    @Test func selectorsThatNameNothingOrTheWrongThingAreRefused() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let cases = [
                ("/v1/series", "name at least one of metric"),
                ("/v1/series?region=eu", "region is not a label"),
                ("/v1/series?metric=nope", "metric nope is not one of"),
                ("/v1/series?metric=frontend_processing_seconds&provider=x", "frontend_processing_seconds has no label provider"),
                ("/v1/series?endpoint=a&endpoint=b", "give endpoint once"),
                ("/v1/series?endpoint=%zz", "malformed %-escape"),
            ]
            for (uri, words) in cases {
                let (status, answer) = try await request(client, .delete, uri)
                #expect(status == .badRequest, "\(uri)")
                #expect(answer["error"]?.stringValue?.contains(words) == true, "\(uri): \(answer)")
            }
        }
    }

    @Test func seriesIdleLongerThanTheTTLLeave() async throws {
        let harness = Harness { $0.seriesTTLMinutes = 10 }
        defer { harness.removeFiles() }
        try await harness.run { components, client in
            try await client.postEvents(eventJSON(endpoint: "/idle", stages: ["backend_fetch": 1]))
            harness.clock.advance(seconds: 6 * 60)
            try await client.postEvents(eventJSON(endpoint: "/busy", stages: ["backend_fetch": 1]))
            harness.clock.advance(seconds: 5 * 60)
            await components.pruner.pruneOnce()
            let lines = try await client.metricLines()
            #expect(sample(lines, ttfb("/idle")) == nil)
            #expect(sample(lines, ttfb("/busy")) == "1")
            // Its backend_ttfb series and its request_stage_duration series.
            #expect(sample(lines, #"perfgate_series_deleted_total{reason="idle"}"#) == "2")
        }
        // After a restart, idleness is measured from the last minute the store holds.
        harness.clock.advance(seconds: 6 * 60)
        try await harness.run { components, client in
            await components.pruner.pruneOnce()
            let lines = try await client.metricLines()
            #expect(sample(lines, ttfb("/busy")) == nil)
        }
    }
}
