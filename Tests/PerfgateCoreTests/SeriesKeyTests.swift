import PerfgateCore
import PerfgateTestSupport
import Testing

@Suite struct SeriesKeyTests {
    /// SipHash-2-4 gives the published outputs for the key 00…0f: the empty message, and the
    /// 15 bytes 00…0e.
    @Test func sipHashGivesThePublishedOutputs() {
        let key = SeriesIDKey(bytes: (0..<16).map { UInt8($0) })!
        var empty = SipHash24(key: key)
        #expect(empty.finish() == 0x726f_db47_dd0e_0e31)
        var fifteen = SipHash24(key: key)
        for byte in 0..<15 { fifteen.append(UInt8(byte)) }
        #expect(fifteen.finish() == 0xa129_ca61_49be_45e5)
        #expect(SeriesIDKey(bytes: [1, 2, 3]) == nil)
    }

    /// A series' shared identifier depends on the database's key: the same under one key (every
    /// replica agrees), unrelated under another, never 0 or negative.
    @Test func sharedIdentifiersAreKeyedPerDatabase() {
        var random = SplitMix(seed: 5)
        let one = SeriesIDKey(bytes: (0..<16).map { _ in UInt8(random.next() & 0xff) })!
        let other = SeriesIDKey(bytes: (0..<16).map { _ in UInt8(random.next() & 0xff) })!
        let keys = (0..<2_000).map { SeriesKey(.backendTTFB, ["p\($0 % 7)", "m\($0)", "/v1/e\($0 % 3)"]) }
        let ids = keys.map { $0.sharedID(keyedBy: one) }
        #expect(ids == keys.map { $0.sharedID(keyedBy: one) })
        #expect(Set(ids).count == keys.count)
        #expect(ids.allSatisfy { $0 > 0 })
        #expect(zip(ids, keys.map { $0.sharedID(keyedBy: other) }).filter { $0 == $1 }.isEmpty)
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
