import HTTPTypes
import HummingbirdTesting
import PerfgateCore
import Testing

@testable import PerfgateServer

@Suite struct WindowTests {
    let percentage = #"stage_percentage{stage="backend_response",endpoint="/v1/chat/completions"}"#

    @Test func stagePercentageIsTheShareOverTheSlidingWindow() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            // 6 s of backend and 3 s of streaming now; 1 s of frontend three minutes ago.
            try await client.postEvents(
                """
                [\(eventJSON(stages: ["backend_fetch": 6, "stream_processing": 3])),
                 \(eventJSON(stages: ["request_parsing": 1], timestamp: testNow.adding(nanoseconds: -180 * 1_000_000_000)))]
                """
            )
            var lines = try await client.metricLines()
            #expect(sample(lines, percentage) == "60")
            #expect(sample(lines, #"stage_percentage{stage="stream_processing",endpoint="/v1/chat/completions"}"#) == "30")
            #expect(sample(lines, #"stage_percentage{stage="frontend_processing",endpoint="/v1/chat/completions"}"#) == "10")

            harness.clock.advance(seconds: 120)  // the frontend minute leaves the 5-minute window
            lines = try await client.metricLines()
            #expect(sample(lines, #"stage_percentage{stage="frontend_processing",endpoint="/v1/chat/completions"}"#) == "0")
            #expect(sample(lines, percentage)?.hasPrefix("66.66") == true)

            harness.clock.advance(seconds: 300)
            lines = try await client.metricLines()
            #expect(sample(lines, percentage) == nil)
        }
    }

    @Test func stagePercentageSurvivesARestart() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            _ = try await client.postEvents(eventJSON(stages: ["backend_fetch": 1, "stream_processing": 3]))
        }
        try await harness.run { _, client in
            let lines = try await client.metricLines()
            #expect(sample(lines, percentage) == "25")
        }
    }

    @Test func trendsCompareTheLastWindowWithAnHourAgo() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let hourAgo = testNow.adding(nanoseconds: -3600 * 1_000_000_000)
            var events: [String] = []
            for i in 0..<20 {
                // slow was 0.5-1 s an hour ago and is 2.5-3 s now; fast stays in 0.1-0.5 s.
                events.append(eventJSON(provider: "slow", stages: ["backend_fetch": 0.9], timestamp: hourAgo))
                events.append(eventJSON(provider: "slow", stages: ["backend_fetch": 2.9]))
                events.append(eventJSON(provider: "fast", stages: ["backend_fetch": 0.3], timestamp: hourAgo))
                events.append(eventJSON(provider: "fast", stages: ["backend_fetch": 0.3]))
                if i < 3 { events.append(eventJSON(provider: "new", stages: ["backend_fetch": 0.3])) }
            }
            #expect(try await client.postEvents("[" + events.joined(separator: ",") + "]").1["accepted"] == .number("83"))

            let (status, report) = try await client.getJSON("/v1/trends?metric=backend_ttfb_seconds&by=provider")
            #expect(status == .ok)
            let groups = try #require(report["groups"]?.arrayValue)
            #expect(groups.map { $0["labels"]?["provider"]?.stringValue } == ["fast", "new", "slow"])
            #expect(groups[0]["degrading"] == .bool(false))
            #expect(groups[0]["change"] == .number("0"))
            #expect(groups[1]["status"] == .string("insufficient_data"))
            #expect(groups[2]["degrading"] == .bool(true))
            #expect(groups[2]["current"]?["count"] == .number("20"))
            // Every slow event took 2.9 s now and 0.9 s then: the exponential buckets answer
            // within 1.1% of that (the classic ones could only say 2.975 and 0.975).
            #expect(groups[2]["resolution"] == .string("exponential"))
            #expect(abs(try #require(groups[2]["current"]?["quantile"]?.doubleValue) / 2.9 - 1) < 0.011)
            #expect(abs(try #require(groups[2]["previous"]?["quantile"]?.doubleValue) / 0.9 - 1) < 0.011)
            #expect(report["current_window"]?["start"] == .string("2026-11-29T03:56:00Z"))
            // Whole minutes were summed, the current one included: the window ends where its last minute does.
            #expect(report["current_window"]?["end"] == .string("2026-11-29T04:01:00Z"))
            #expect(report["previous_window"]?["end"] == .string("2026-11-29T03:01:00Z"))

            let filtered = try await client.getJSON("/v1/trends?metric=backend_ttfb_seconds&provider=fast&quantile=0.5")
            #expect(filtered.1["groups"]?.arrayValue?.count == 1)
            #expect(filtered.1["groups"]?[0]?["labels"] == .object([]))

            let bad = try await client.getJSON("/v1/trends?metric=backend_ttfb_seconds&window=2m30s")
            #expect(bad.0 == .badRequest)
            #expect(bad.1["error"]?.stringValue?.hasPrefix("window must be whole minutes") == true)
        }
    }
}
