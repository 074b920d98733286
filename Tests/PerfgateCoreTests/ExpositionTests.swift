import NIOCore
import PerfgateCore
import PerfgateTestSupport
import Testing

@Suite struct ExpositionTests {
    @Test func writesAHistogramSeriesExactly() throws {
        let layout = try BucketLayout(seconds: ["0.1", "1"])
        var counts = HistogramCounts(bucketCount: layout.bucketCount)
        counts.observe(nanoseconds: 100 * ms, bucket: layout.bucketIndex(for: 100 * ms))
        counts.observe(nanoseconds: 1_697 * ms, bucket: layout.bucketIndex(for: 1_697 * ms))
        counts.observe(nanoseconds: 400_000, bucket: layout.bucketIndex(for: 400_000))
        var writer = ExpositionWriter()
        writer.header(name: "backend_ttfb_seconds", help: "TTFB.", kind: .histogram)
        writer.histogram(
            name: "backend_ttfb_seconds",
            labels: RenderedLabels(SeriesKey(.backendTTFB, ["open\"router", "a\\b", "/v1/x\ny"])),
            counts: counts,
            boundLabels: layout.boundLabels
        )
        let expected = #"""
            # HELP backend_ttfb_seconds TTFB.
            # TYPE backend_ttfb_seconds histogram
            backend_ttfb_seconds_bucket{provider="open\"router",model="a\\b",endpoint="/v1/x\ny",le="0.1"} 2
            backend_ttfb_seconds_bucket{provider="open\"router",model="a\\b",endpoint="/v1/x\ny",le="1.0"} 2
            backend_ttfb_seconds_bucket{provider="open\"router",model="a\\b",endpoint="/v1/x\ny",le="+Inf"} 3
            backend_ttfb_seconds_sum{provider="open\"router",model="a\\b",endpoint="/v1/x\ny"} 1.7974
            backend_ttfb_seconds_count{provider="open\"router",model="a\\b",endpoint="/v1/x\ny"} 3

            """#
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
    }

    @Test func escapesHelpAndWritesSpecialValues() {
        var writer = ExpositionWriter()
        writer.header(name: "g", help: "a\\b\nc", kind: .gauge)
        writer.sample(name: "g", labels: .none, value: .nan)
        writer.sample(name: "g", labels: RenderedLabels([(name: "k", value: "v")]), value: .infinity)
        writer.sample(name: "g", labels: .none, value: -.infinity)
        writer.sample(name: "g", labels: .none, value: 42)
        writer.sample(name: "g", labels: .none, value: 56.25)
        #expect(
            String(decoding: writer.bytes, as: UTF8.self) == """
                # HELP g a\\\\b\\nc
                # TYPE g gauge
                g NaN
                g{k="v"} +Inf
                g -Inf
                g 42
                g 56.25

                """
        )
    }

    @Test func aPageListsFamiliesByNameAndSeriesByLabels() {
        let layouts = BucketLayouts.seed
        func sample(_ key: SeriesKey) -> HistogramSample {
            HistogramSample(key: key, labels: RenderedLabels(key), counts: HistogramCounts(bucketCount: layouts[key.metric].bucketCount))
        }
        let snapshot = SeedMetricsSnapshot(
            histograms: [
                .frontendProcessing: [sample(SeriesKey(.frontendProcessing, ["/b"])), sample(SeriesKey(.frontendProcessing, ["/a"]))]
            ],
            shares: [StageShare(endpoint: "/a", percentages: [0.5, 56.25, 43.25])],
            shareWindowMinutes: 5,
            layouts: layouts
        )
        let text = String(buffer: ExpositionPage.render(snapshot.families()))
        let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE") }.map { $0.split(separator: " ")[2] }
        #expect(
            families == [
                "backend_ttfb_seconds", "frontend_processing_seconds", "request_stage_duration_seconds",
                "stage_percentage", "streaming_duration_seconds",
            ]
        )
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.firstIndex { $0.contains(#"endpoint="/a""#) }! < lines.firstIndex { $0.contains(#"endpoint="/b""#) }!)
        #expect(text.contains(#"stage_percentage{stage="backend_response",endpoint="/a"} 56.25"#))
        #expect(text.contains("over the last 5m, in percent"))
    }

    /// The writer formats sums itself, without making Strings; it must match the reference format.
    @Test(arguments: [
        Int128(0), 1, 10, 400_000, 1_697_000_000, 1_000_000_000, 120_000_000_001, -1_500_000_000,
        Int128(UInt64.max) * 1_000_000_000 + 5, Int128(UInt64.max) * 10_000_000_000,
    ])
    func writesSumsAsDecimalSecondsDoes(nanoseconds: Int128) {
        var writer = ExpositionWriter()
        let parts = HistogramLineParts(name: "h", boundLabels: ["+Inf"])
        writer.histogram(parts, labels: .none, counts: HistogramCounts(buckets: [3], exponential: .unrecorded, sumNanoseconds: nanoseconds))
        let expected = "h_bucket{le=\"+Inf\"} 3\nh_sum \(DecimalSeconds.format(nanoseconds: nanoseconds))\nh_count 3\n"
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
    }

    /// A page of random series, written into a buffer far too small to start with (so it grows
    /// under the raw cursor again and again), equals the page built line by line from Strings.
    @Test(arguments: [1, 4096, 1 << 22])
    func aPageOfRandomSeriesMatchesOneBuiltFromStrings(capacity: Int) {
        var random = SplitMix(seed: UInt64(capacity))
        let layouts = BucketLayouts.seed
        let alphabet = Array("ab/-\\\"\n.é7")
        func escaped(_ value: String) -> String {
            value.map { $0 == "\\" ? "\\\\" : $0 == "\"" ? "\\\"" : $0 == "\n" ? "\\n" : String($0) }.joined()
        }
        var histograms: [HistogramMetric: [HistogramSample]] = [:]
        var expected: [HistogramMetric: String] = [:]
        for metric in HistogramMetric.allCases {
            let layout = layouts[metric]
            var samples: [HistogramSample] = []
            for _ in 0..<(1 + random.next(below: 40)) {
                let values = metric.labelNames.map { _ in String((0..<random.next(below: 30)).map { _ in alphabet[random.next(below: alphabet.count)] }) }
                let key = SeriesKey(metric, values)
                let buckets = (0..<layout.bucketCount).map { _ in random.next(below: 4) == 0 ? 0 : random.next() >> UInt64(20 + random.next(below: 44)) }
                let sum = Int128(Int64(bitPattern: random.next() >> 2)) * Int128(1 + random.next(below: 1000))
                samples.append(HistogramSample(key: key, labels: RenderedLabels(key), counts: HistogramCounts(buckets: buckets, exponential: .unrecorded, sumNanoseconds: sum)))
            }
            samples.sort { $0.key < $1.key }
            var text = "# HELP \(metric.name) \(metric.help)\n# TYPE \(metric.name) histogram\n"
            for sample in samples {
                let labels = zip(metric.labelNames, sample.key.labelValues).map { "\($0)=\"\(escaped($1))\"" }.joined(separator: ",")
                var cumulative: UInt64 = 0
                for (bound, count) in zip(layout.boundLabels, sample.counts.buckets) {
                    cumulative &+= count
                    text += "\(metric.name)_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
                }
                text += "\(metric.name)_sum{\(labels)} \(DecimalSeconds.format(nanoseconds: sample.counts.sumNanoseconds))\n"
                text += "\(metric.name)_count{\(labels)} \(cumulative)\n"
            }
            histograms[metric] = samples
            expected[metric] = text
        }
        let snapshot = SeedMetricsSnapshot(histograms: histograms, shares: [], shareWindowMinutes: 5, layouts: layouts, inOrder: true)
        let page = String(buffer: ExpositionPage.render(snapshot.families(), capacity: capacity))
        let stagePercentage = """
            # HELP stage_percentage Share of each stage group in the endpoint's total stage time over the last 5m, in percent (0-100).
            # TYPE stage_percentage gauge

            """
        let families = (HistogramMetric.allCases.map { ($0.name, expected[$0]!) } + [("stage_percentage", stagePercentage)]).sorted { $0.0 < $1.0 }
        #expect(page == families.map(\.1).joined())
    }
}
