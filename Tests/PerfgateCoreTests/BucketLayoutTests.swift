import PerfgateCore
import PerfgateTestSupport
import Testing

@Suite struct BucketLayoutTests {
    @Test(arguments: HistogramMetric.allCases)
    func aValueOnABoundGoesInThatBucketAndJustAboveGoesInTheNext(metric: HistogramMetric) {
        let layout = BucketLayout.default(for: metric)
        for (index, bound) in layout.upperBounds.enumerated() {
            #expect(layout.bucketIndex(for: bound) == index)
            #expect(layout.bucketIndex(for: bound + 1) == index + 1)
            #expect(layout.bucketIndex(for: bound - 1) == (index > 0 && layout.upperBounds[index - 1] == bound - 1 ? index - 1 : index))
        }
        #expect(layout.bucketIndex(for: 0) == 0)
        #expect(layout.bucketIndex(for: Int64.max) == layout.upperBounds.count)
    }

    @Test func defaultsAreTheSeeds() {
        #expect(BucketLayout.default(for: .backendTTFB).boundLabels == ["0.1", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "5.0", "10.0", "+Inf"])
        #expect(BucketLayout.default(for: .streamingDuration) == BucketLayout.default(for: .backendTTFB))
        #expect(BucketLayout.default(for: .frontendProcessing).boundLabels == ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "+Inf"])
        let stage = Set(BucketLayout.default(for: .requestStageDuration).upperBounds)
        #expect(stage == Set(BucketLayout.default(for: .backendTTFB).upperBounds).union(BucketLayout.default(for: .frontendProcessing).upperBounds))
    }

    /// Ingest reads a value's classic bucket from its exponential index where it can: for every
    /// value, it must be the bucket the search of the bounds finds, whatever the bounds (on powers
    /// of two, which are exponential bounds too; zero; two inside one exponential bucket).
    @Test func theClassicBucketFromTheExponentialIndexIsTheSearchedOne() throws {
        let layouts = BucketLayouts(overrides: [
            .backendTTFB: try BucketLayout(seconds: ["0", "0.25", "0.5", "1", "2", "4"]),
            .streamingDuration: try BucketLayout(seconds: ["1", "1.001", "1.002", "60"]),
            .frontendProcessing: try BucketLayout(seconds: ["0.000000001", "0.000000002", "86400"]),
        ])
        var random = SplitMix(seed: 5)
        var values: [Int64] = [1, 2, 3, 250_000_000, 250_000_001, 500_000_000, 999_999_999, 1_000_000_000, 1_000_000_001, 1_001_000_000, 1_002_000_001]
        for _ in 0..<20_000 { values.append(Distribution.wide.sample(&random)) }
        for _ in 0..<2_000 { values.append(Int64.random(in: 1...200_000_000_000_000, using: &random)) }
        var fromTable = 0
        layouts.withClassicByExponential { table in
            for metric in HistogramMetric.allCases {
                for value in values {
                    let searched = layouts[metric].bucketIndex(for: value)
                    if let read = table.bucket(of: metric, exponentialIndex: ExponentialBuckets.index(nanoseconds: value)) {
                        #expect(read == searched, "\(metric) \(value) ns")
                        fromTable += 1
                    }
                }
            }
        }
        #expect(fromTable > values.count * 3)
    }

    @Test func refusesBadLayouts() {
        #expect(throws: LayoutError.self) { try BucketLayout(seconds: []) }
        #expect(throws: LayoutError.self) { try BucketLayout(seconds: ["1", "0.5"]) }
        #expect(throws: LayoutError.self) { try BucketLayout(seconds: ["1", "1"]) }
        #expect(throws: LayoutError.self) { try BucketLayout(seconds: ["-1"]) }
        #expect(throws: LayoutError.self) { try BucketLayout(seconds: ["abc"]) }
        #expect(throws: LayoutError.self) { try BucketLayout(seconds: (1...65).map(String.init)) }
        #expect((try? BucketLayout(seconds: ["0", " 0.5", "2"]))?.description == "0,0.5,2")
    }
}

@Suite struct EventDerivationTests {
    private func observations(_ event: TimingEvent) -> [SeriesKey: Int64] {
        var result: [SeriesKey: Int64] = [:]
        EventDerivation.forEachObservation(of: event) { key, value in
            #expect(result[key] == nil, "one observation per series per event")
            result[key] = value
        }
        return result
    }

    @Test func derivesTheFourHistogramsFromTheSeedEvent() {
        let seed = event(stages: [
            ("request_parsing", 1_100_000), ("auth_validation", 900_000), ("request_preparation", 400_000),
            ("backend_fetch", 1_697 * ms), ("stream_processing", 1_301 * ms),
        ])
        let endpoint = "/v1/chat/completions"
        #expect(
            observations(seed) == [
                SeriesKey(.backendTTFB, ["openrouter", "gpt-4o", endpoint]): 1_697 * ms,
                SeriesKey(.streamingDuration, ["openrouter", "gpt-4o", endpoint]): 1_301 * ms,
                SeriesKey(.frontendProcessing, [endpoint]): 2_400_000,
                SeriesKey(.requestStageDuration, ["request_parsing", endpoint]): 1_100_000,
                SeriesKey(.requestStageDuration, ["auth_validation", endpoint]): 900_000,
                SeriesKey(.requestStageDuration, ["request_preparation", endpoint]): 400_000,
                SeriesKey(.requestStageDuration, ["backend_fetch", endpoint]): 1_697 * ms,
                SeriesKey(.requestStageDuration, ["stream_processing", endpoint]): 1_301 * ms,
            ]
        )
    }

    @Test func frontendIsTheSumOfThePresentStagesAndAbsentWithoutThem() {
        let partial = observations(event(stages: [("auth_validation", 2 * ms), ("backend_fetch", second)]))
        #expect(partial[SeriesKey(.frontendProcessing, ["/v1/chat/completions"])] == 2 * ms)
        #expect(partial[SeriesKey(.streamingDuration, ["openrouter", "gpt-4o", "/v1/chat/completions"])] == nil)

        let custom = observations(event(stages: [("cache_lookup", 3 * ms)]))
        #expect(custom == [SeriesKey(.requestStageDuration, ["cache_lookup", "/v1/chat/completions"]): 3 * ms])
    }

    @Test func aDeltaBucketsEachObservationIntoItsMinute() {
        var delta = RollupDelta()
        let layouts = BucketLayouts.seed
        delta.add(event(stages: [("backend_fetch", 100 * ms)]), layouts: layouts)
        delta.add(event(stages: [("backend_fetch", 100 * ms + 1)]), layouts: layouts)
        delta.add(event(stages: [("backend_fetch", 20 * second)], at: testNow.adding(nanoseconds: -60 * second)), layouts: layouts)
        let key = SeriesKey(.backendTTFB, ["openrouter", "gpt-4o", "/v1/chat/completions"])
        let now = delta.counts(layouts: layouts)[RollupKey(series: key, minute: testNow.minute)]
        #expect(now?.buckets == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(now?.sumNanoseconds == 200 * Int128(ms) + 1)
        let before = delta.counts(layouts: layouts)[RollupKey(series: key, minute: testNow.minute.advanced(by: -1))]
        #expect(before?.buckets == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(delta.eventCount == 3)
    }
}

@Suite struct CanonicalBoundLabelTests {
    /// Pairs from Python's `prometheus_client.utils.floatToGoString`, the text the seed's exporter writes.
    @Test(arguments: [
        ("0.00001", "1e-05"), ("0.000015", "1.5e-05"), ("0.000099999", "9.9999e-05"), ("0.000000001", "1e-09"),
        ("0.0001", "0.0001"), ("0.001", "0.001"), ("0.1", "0.1"), ("1", "1.0"), ("2.5", "2.5"), ("10", "10.0"),
        ("999999", "999999.0"), ("123456.789", "123456.789"), ("1000000", "1e+06"), ("1500000", "1.5e+06"),
        ("1000000.5", "1.0000005e+06"), ("0", "0.0"),
    ])
    func boundsAreWrittenAsPrometheusClientWritesThem(seconds: String, label: String) throws {
        let layout = try BucketLayout(seconds: [seconds])
        #expect(layout.boundLabels == [label, "+Inf"])
    }
}
