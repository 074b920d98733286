import PerfgateCore
import PerfgateTestSupport
import Testing

@Suite struct TrendQueryTests {
    private func parse(_ query: String) throws -> TrendQuery {
        try TrendQuery.parse(try QueryString.parse(query), retentionMinutes: 25 * 60)
    }

    @Test func readsEveryParameter() throws {
        let query = try parse("metric=backend_ttfb_seconds&quantile=0.99&window=10m&offset=1d&by=provider,model&provider=openrouter&provider=portkey&threshold=0.25&min_count=3")
        var expected = TrendQuery(metric: .backendTTFB)
        expected.quantile = 0.99
        expected.windowMinutes = 10
        expected.offsetMinutes = 1440
        expected.groupBy = ["provider", "model"]
        expected.filters = ["provider": ["openrouter", "portkey"]]
        expected.threshold = 0.25
        expected.minCount = 3
        #expect(query == expected)
    }

    @Test func defaultsToP95OfFiveMinutesAgainstAnHourAgo() throws {
        let query = try parse("metric=streaming_duration_seconds")
        #expect(query.quantile == 0.95)
        #expect(query.windowMinutes == 5)
        #expect(query.offsetMinutes == 60)
        #expect(query.threshold == 0.5)
        #expect(query.currentMinutes(at: testNow) == testNow.minute.advanced(by: -4)...testNow.minute)
        #expect(query.previousMinutes(at: testNow) == testNow.minute.advanced(by: -64)...testNow.minute.advanced(by: -60))
    }

    @Test(arguments: [
        ("", "metric is required"),
        ("metric=nope", "unknown metric 'nope'"),
        ("metric=stage_percentage", "is a gauge"),
        ("metric=backend_ttfb_seconds&quantile=1.5", "quantile must be a number from 0 to 1"),
        ("metric=backend_ttfb_seconds&window=30s", "window must be whole minutes"),
        ("metric=backend_ttfb_seconds&offset=soon", "offset must be whole minutes"),
        ("metric=backend_ttfb_seconds&offset=25h", "beyond the retention of 1d1h"),
        ("metric=frontend_processing_seconds&by=provider", "cannot group frontend_processing_seconds by 'provider'"),
        ("metric=backend_ttfb_seconds&by=model,model", "by names model twice"),
        ("metric=backend_ttfb_seconds&threshold=-1", "threshold must be a number ≥ 0"),
        ("metric=backend_ttfb_seconds&min_count=0", "min_count must be a whole number ≥ 1"),
        ("metric=backend_ttfb_seconds&stage=x", "unknown parameter 'stage'"),
        ("metric=backend_ttfb_seconds&metric=x", "metric appears more than once"),
    ])
    func explainsWhatIsWrong(query: String, words: String) {
        #expect {
            _ = try parse(query)
        } throws: { error in
            guard let error = error as? TrendQueryError else { return false }
            if !error.message.contains(words) { Issue.record("\(error.message)") }
            return true
        }
    }

    @Test func decodesAndRefusesQueryStrings() throws {
        #expect(try QueryString.parse("a=1&b=x%2Fy+z&c=&d").map { "\($0.name)=\($0.value)" } == ["a=1", "b=x/y z", "c=", "d="])
        #expect(try QueryString.parse("endpoint=%2Fv1%2Fchat%2Fcompletions").first?.value == "/v1/chat/completions")
        #expect(throws: QueryStringError.self) { try QueryString.parse("a=%zz") }
        #expect(throws: QueryStringError.self) { try QueryString.parse("a=%4") }
        #expect(throws: QueryStringError.self) { try QueryString.parse("a=%ff") }
        #expect(throws: QueryStringError.self) { try QueryString.parse("a=%00") }
        #expect(throws: QueryStringError.self) { try QueryString.parse("=x") }
    }
}

@Suite struct TrendReportTests {
    let layout = BucketLayout.default(for: .backendTTFB)

    private func counts(_ perBucket: [Int: UInt64]) -> HistogramCounts {
        var counts = HistogramCounts(bucketCount: layout.bucketCount)
        for (bucket, count) in perBucket { counts.buckets[bucket] = count }
        return counts
    }

    @Test func comparesGroupsAndFlagsTheDegradingOne() throws {
        var query = TrendQuery(metric: .backendTTFB)
        query.groupBy = ["provider"]
        let series = [
            SeriesRecord(id: 1, key: SeriesKey(.backendTTFB, ["fast", "m1", "/a"])),
            SeriesRecord(id: 2, key: SeriesKey(.backendTTFB, ["fast", "m2", "/a"])),
            SeriesRecord(id: 3, key: SeriesKey(.backendTTFB, ["slow", "m1", "/a"])),
            SeriesRecord(id: 4, key: SeriesKey(.streamingDuration, ["slow", "m1", "/a"])),
        ]
        // fast: 20 events in (0.1, 0.5] both times. slow: was in (0.5, 1], is now in (2.5, 3].
        let current: [SeriesID: HistogramCounts] = [1: counts([1: 10]), 2: counts([1: 10]), 3: counts([6: 20]), 4: counts([9: 100])]
        let previous: [SeriesID: HistogramCounts] = [1: counts([1: 10]), 2: counts([1: 10]), 3: counts([2: 20])]
        let report = TrendReport(query: query, now: testNow, series: series, current: current, previous: previous, layout: layout)
        #expect(report.groups.map { $0.labels.map(\.value) } == [["fast"], ["slow"]])
        let fast = report.groups[0]
        #expect(fast.current.count == 20 && fast.previous.count == 20)
        #expect(fast.change == 0 && !fast.degrading && fast.status == .ok)
        let slow = report.groups[1]
        #expect(slow.current.quantile == 2.5 + 0.5 * 19 / 20)
        #expect(slow.previous.quantile == 0.5 + 0.5 * 19 / 20)
        #expect(slow.degrading)
        #expect(slow.change == (2.975 - 0.975) / 0.975)
    }

    @Test func saysWhenAWindowHoldsTooFewEvents() {
        let query = TrendQuery(metric: .backendTTFB)
        let series = [SeriesRecord(id: 1, key: SeriesKey(.backendTTFB, ["p", "m", "/a"]))]
        let report = TrendReport(
            query: query, now: testNow, series: series, current: [1: counts([1: 50])], previous: [1: counts([8: 3])], layout: layout
        )
        let group = report.groups[0]
        #expect(group.status == .insufficientData(reason: "the previous window holds 3 events; min_count is 10"))
        #expect(!group.degrading)
        #expect(group.change == nil)
        #expect(group.previous.quantile != nil)
        let json = String(decoding: report.json(), as: UTF8.self)
        #expect(json.contains(#""status":"insufficient_data","reason":"the previous window holds 3 events; min_count is 10""#))
        #expect(json.contains(#""current_window":{"start":"2026-11-29T03:56:00Z","end":"2026-11-29T04:01:00Z"}"#))
        #expect(json.contains(#""previous_window":{"start":"2026-11-29T02:56:00Z","end":"2026-11-29T03:01:00Z"}"#))
    }

    @Test func filtersSeriesByLabelValues() {
        var query = TrendQuery(metric: .backendTTFB)
        query.filters = ["model": ["m2"]]
        let series = [
            SeriesRecord(id: 1, key: SeriesKey(.backendTTFB, ["p", "m1", "/a"])),
            SeriesRecord(id: 2, key: SeriesKey(.backendTTFB, ["p", "m2", "/a"])),
        ]
        let report = TrendReport(
            query: query, now: testNow, series: series,
            current: [1: counts([0: 100]), 2: counts([3: 10])], previous: [1: counts([0: 100]), 2: counts([3: 10])], layout: layout
        )
        #expect(report.groups.count == 1)
        #expect(report.groups[0].current.count == 10)
        #expect(report.groups[0].labels.isEmpty)
    }
}

/// Changes inside one of the seed's wide buckets: what the classic buckets cannot see.
@Suite struct TrendResolutionTests {
    let layout = BucketLayout.default(for: .backendTTFB)
    let series = [SeriesRecord(id: 1, key: SeriesKey(.backendTTFB, ["p", "m", "/a"]))]

    /// `count` observations uniform in `range` seconds, and the exact p95 (rank ⌈0.95·n⌉).
    func uniform(_ range: ClosedRange<Double>, count: Int, seed: UInt64) -> (counts: HistogramCounts, p95: Double) {
        var random = SplitMix(seed: seed)
        var counts = HistogramCounts(bucketCount: layout.bucketCount)
        var values: [Int64] = []
        for _ in 0..<count {
            let value = Int64((Double.random(in: range, using: &random) * 1e9).rounded())
            values.append(value)
            counts.observe(nanoseconds: value, bucket: layout.bucketIndex(for: value))
        }
        values.sort()
        return (counts, Double(values[Int((0.95 * Double(count)).rounded(.up)) - 1]) / 1e9)
    }

    func report(now: HistogramCounts, then: HistogramCounts) -> TrendReport.Group {
        TrendReport(query: TrendQuery(metric: .backendTTFB), now: testNow, series: series, current: [1: now], previous: [1: then], layout: layout).groups[0]
    }

    @Test func aSixtyFivePercentRiseInsideBucketsIsDegrading() {
        let then = uniform(5.2...6.0, count: 400, seed: 1)
        let now = uniform(8.5...9.9, count: 400, seed: 2)
        let group = report(now: now.counts, then: then.counts)
        #expect(group.resolution == .exponential)
        #expect(abs(group.previous.quantile! - then.p95) / then.p95 < 0.011, "\(group.previous.quantile!) against \(then.p95)")
        #expect(abs(group.current.quantile! - now.p95) / now.p95 < 0.011, "\(group.current.quantile!) against \(now.p95)")
        let trueChange = now.p95 / then.p95 - 1
        #expect(trueChange > 0.6)
        #expect(abs(group.change! - trueChange) < 0.03)
        #expect(group.degrading)
        // The classic buckets alone put both windows' p95 in the 5-10 s bucket: no change at all.
        let classicNow = now.counts.quantile(0.95, at: .classic, layout: layout)
        let classicThen = then.counts.quantile(0.95, at: .classic, layout: layout)
        #expect(classicNow == classicThen)
    }

    @Test func aTwentyOnePercentRiseIsSeenAndNotCalledDegrading() {
        let then = uniform(1.05...1.20, count: 400, seed: 3)
        let now = uniform(1.30...1.45, count: 400, seed: 4)
        let group = report(now: now.counts, then: then.counts)
        let trueChange = now.p95 / then.p95 - 1
        #expect(abs(group.change! - trueChange) < 0.025, "\(group.change!) against \(trueChange)")
        #expect(group.change! > 0.18)
        #expect(!group.degrading)
    }

    @Test func countsStoredBeforeExponentialBucketsAnswerFromClassicAndSaySo() {
        let then = uniform(5.2...6.0, count: 400, seed: 5)
        var old = HistogramCounts(buckets: then.counts.buckets, exponential: .unrecorded, sumNanoseconds: then.counts.sumNanoseconds)
        let now = uniform(8.5...9.9, count: 400, seed: 6)
        let group = report(now: now.counts, then: old)
        #expect(group.resolution == .classic)
        #expect(group.previous.quantile == old.quantile(0.95, at: .classic, layout: layout))
        let json = String(decoding: TrendReport(query: TrendQuery(metric: .backendTTFB), now: testNow, series: series, current: [1: now.counts], previous: [1: old], layout: layout).json(), as: UTF8.self)
        #expect(json.contains(#""resolution":"classic""#))
        // Old counts merged with new ones stay classic: the merged window is not whole.
        old.add(now.counts)
        #expect(!old.hasWholeExponential)
    }
}
