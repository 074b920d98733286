import PerfgateCore
import PerfgateTestSupport
import Testing

@Suite struct SeriesKeyTests {
    /// Replicas of a shared store and every release must name a series alike: these identifiers
    /// were computed apart from perfgate (FNV-1a over the UTF-8 of the family name and each value,
    /// each followed by U+001F, top bit cleared) and are what stores already hold.
    @Test func theSharedIdentifierIsTheOneStoresHold() {
        #expect(SeriesKey(.backendTTFB, ["openrouter", "gpt-4o", "/v1/chat/completions"]).sharedID == 4_974_471_906_045_744_541)
        #expect(SeriesKey(.frontendProcessing, ["/v1/chat/completions"]).sharedID == 4_609_792_230_330_266_016)
        #expect(SeriesKey(.requestStageDuration, ["backend_fetch", "/é"]).sharedID == 6_134_101_854_549_791_433)
    }

    /// Keys order, compare and hash as their family and array of values do, values that are empty
    /// or prefixes of each other included.
    @Test func keysOrderAndCompareAsTheirValueArrays() {
        var random = SplitMix(seed: 20_261_202)
        let pieces = ["", "a", "ab", "b", "/v1", "/v1/x", "é", "__overflow__"]
        let keys = (0..<400).map { _ -> SeriesKey in
            let metric = HistogramMetric.allCases[Int(random.next() % 4)]
            return SeriesKey(metric, (0..<metric.labelCount).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] })
        }
        for left in keys.prefix(60) {
            #expect(left.labelValues.count == left.metric.labelNames.count)
            #expect(SeriesKey(left.metric, left.labelValues) == left)
            for right in keys {
                let arraysOrder = left.metric != right.metric ? left.metric < right.metric : left.labelValues.lexicographicallyPrecedes(right.labelValues)
                #expect((left < right) == arraysOrder)
                let arraysEqual = left.metric == right.metric && left.labelValues == right.labelValues
                #expect((left == right) == arraysEqual)
                if arraysEqual { #expect(left.hashValue == right.hashValue) }
            }
        }
    }
}
