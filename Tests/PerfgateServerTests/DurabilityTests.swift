import HTTPTypes
import HummingbirdTesting
import PerfgateCore
import PerfgateTestSupport
import Testing

@testable import PerfgateServer

@Suite struct DurabilityTests {
    @Test func aRestartRestoresTheSameCumulativeCounts() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        let before = try await harness.run { _, client in
            try await client.postEvents(
                "[" + (0..<50).map { i in
                    eventJSON(
                        provider: ["openrouter", "portkey"][i % 2], model: "m\(i % 5)",
                        stages: ["request_parsing": 0.0011, "auth_validation": Double(i) / 10_000, "backend_fetch": Double(i) / 10, "stream_processing": 1.301]
                    )
                }.joined(separator: ",") + "]"
            )
            return seedLines(try await client.metricLines())
        }
        let after = try await harness.run { _, client in seedLines(try await client.metricLines()) }
        #expect(before.count > 100)
        #expect(after == before)
    }

    @Test func pruningFoldsOldWindowsWithoutChangingTotals() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { components, client in
            let dayAgo = testNow.adding(nanoseconds: -24 * 3600 * 1_000_000_000)
            try await client.postEvents("[\(eventJSON(stages: ["backend_fetch": 2.5], timestamp: dayAgo)), \(eventJSON(stages: ["backend_fetch": 0.25]))]")
            // stage_percentage moves with the clock; the histograms must not move at all.
            let histogramLines = { (lines: [String]) in seedLines(lines).filter { !$0.contains("stage_percentage") } }
            let before = histogramLines(try await client.metricLines())
            harness.clock.advance(seconds: 2 * 3600)  // the day-old minute is now past the 25h retention
            await components.pruner.pruneOnce()
            let lines = try await client.metricLines()
            #expect(histogramLines(lines) == before)
            #expect(sample(lines, "perfgate_pruned_rollups_total") == "2")
            let ids = Set(components.live.records(of: .backendTTFB).map(\.id))
            #expect(try await components.store.windowTotals(of: .backendTTFB, series: ids, minutes: dayAgo.minute...dayAgo.minute).isEmpty)
        }
        let restarted = try await harness.run { _, client in try await client.metricLines() }
        #expect(sample(restarted, #"backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) == "2")
        #expect(sample(restarted, #"backend_ttfb_seconds_sum{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) == "2.75")
    }

    @Test func aSeriesTheStoreHoldsWithoutCountsIsRestoredEmpty() async throws {
        let store = InMemoryRollupStore()
        try await store.commit(CommitBatch(newSeries: [SeriesRecord(id: 7, key: SeriesKey(.frontendProcessing, ["/idle"]))], rollups: []))
        let harness = Harness()
        defer { harness.removeFiles() }
        let lines = try await harness.run(store: store) { _, client in try await client.metricLines() }
        #expect(sample(lines, #"frontend_processing_seconds_count{endpoint="/idle"}"#) == "0")
        #expect(sample(lines, #"perfgate_series{metric="frontend_processing_seconds"}"#) == "1")
    }
}
