import Foundation
import PerfgateCore
import PerfgateTestSupport
import Testing

/// Distributions of durations in nanoseconds, drawn from a seeded generator.
enum Distribution: String, CaseIterable, CustomTestStringConvertible {
    case lognormal, uniform, bimodal, heavyTailed, tiny, wide

    var testDescription: String { rawValue }

    func sample(_ random: inout SplitMix) -> Int64 {
        func unit() -> Double { Double.random(in: Double.ulpOfOne..<1, using: &random) }
        func normal() -> Double { sqrt(-2 * log(unit())) * cos(2 * .pi * unit()) }
        let seconds: Double
        switch self {
        case .lognormal: seconds = exp(log(0.8) + 0.6 * normal())  // TTFB around 0.8 s
        case .uniform: seconds = Double.random(in: 0.05...9.5, using: &random)
        case .bimodal: seconds = Bool.random(using: &random) ? exp(log(0.12) + 0.2 * normal()) : exp(log(4.5) + 0.15 * normal())
        case .heavyTailed: seconds = 0.2 * pow(unit(), -1 / 1.3)  // Pareto, α = 1.3
        case .tiny: seconds = Double.random(in: 0.0001...0.09, using: &random)
        case .wide: seconds = exp(Double.random(in: log(0.001)...log(60), using: &random))  // 1 ms to 60 s
        }
        return max(1, Int64((seconds * 1e9).rounded()))
    }
}

@Suite struct ExponentialBucketsTests {
    /// The observation of rank ⌈q·n⌉: the exact quantile the estimate is measured against.
    func exactQuantile(_ q: Double, _ sorted: [Int64]) -> Double {
        let rank = max(1, Int((q * Double(sorted.count)).rounded(.up)))
        return Double(sorted[rank - 1]) / 1e9
    }

    @Test(arguments: Distribution.allCases)
    func quantilesAreWithinOnePercentOfTheExactOnes(distribution: Distribution) {
        var worst = 0.0
        for seed in UInt64(1)...40 {
            var random = SplitMix(seed: seed &* 7919 &+ UInt64(distribution.rawValue.count))
            let count = Int.random(in: 10...3000, using: &random)
            var buckets = ExponentialBuckets()
            var values: [Int64] = []
            for _ in 0..<count {
                let value = distribution.sample(&random)
                values.append(value)
                buckets.observe(nanoseconds: value)
            }
            values.sort()
            #expect(buckets.count == UInt64(count))
            for q in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1] {
                let exact = exactQuantile(q, values)
                let estimate = buckets.quantile(q)
                let error = abs(estimate - exact) / exact
                worst = max(worst, error)
                #expect(error <= 0.011, "\(distribution) seed \(seed) n=\(count) q=\(q): \(estimate) against \(exact)")
            }
        }
        // The bucket width is the bound: 2^(1/64) - 1.
        #expect(worst <= exp2(1.0 / 64) - 1)
    }

    @Test func everyValueFallsInsideItsBucket() {
        var random = SplitMix(seed: 42)
        var values: [Int64] = [1, 999, 1_000_000, 1_000_000_000, 86_400_000_000_000]
        for _ in 0..<20_000 { values.append(Distribution.wide.sample(&random)) }
        // Exact powers of two are upper bounds (bounds are inclusive).
        values += [500_000_000, 250_000_000, 2_000_000_000, 4_000_000_000]
        for value in values {
            let seconds = Double(value) / 1e9
            let index = ExponentialBuckets.index(nanoseconds: value)
            #expect(seconds <= ExponentialBuckets.upperBound(index) * (1 + 1e-12), "\(value) ns in bucket \(index)")
            #expect(seconds > ExponentialBuckets.lowerBound(index) * (1 - 1e-12), "\(value) ns in bucket \(index)")
        }
        #expect(ExponentialBuckets.index(seconds: 1) == 0)
        #expect(ExponentialBuckets.index(seconds: 2) == 64)
        #expect(ExponentialBuckets.index(seconds: 0.5) == -64)
        // The whole accepted range, 1 ns to a day, fits comfortably in Int32.
        #expect(ExponentialBuckets.index(nanoseconds: 1) == -1913)
        #expect(ExponentialBuckets.index(nanoseconds: 86_400 * 1_000_000_000) == 1050)
    }

    @Test func mergingInAnyOrderGivesTheSameExactCounts() {
        var random = SplitMix(seed: 7)
        var parts: [ExponentialBuckets] = []
        var whole = ExponentialBuckets()
        for _ in 0..<30 {
            var part = ExponentialBuckets()
            for _ in 0..<Int.random(in: 0...200, using: &random) {
                let value = Bool.random(using: &random) ? Distribution.bimodal.sample(&random) : 0
                part.observe(nanoseconds: value)
                whole.observe(nanoseconds: value)
            }
            parts.append(part)
        }
        var forward = ExponentialBuckets()
        parts.forEach { forward.add($0) }
        var backward = ExponentialBuckets()
        parts.reversed().forEach { backward.add($0) }
        var sums = ExponentialSums(slots: 1)
        parts.shuffled(using: &random).forEach { sums.add($0, to: 0) }
        sums.finish()
        #expect(forward == whole)
        #expect(backward == whole)
        #expect(sums.buckets(ofSlot: 0) == whole)
        #expect(whole.zeroCount > 0)
    }

    /// A read of more rows than `ExponentialSums` keeps pending (a day of minutes) sums them in
    /// turns; the sums equal adding each row's buckets one by one, zeros and incomplete slots too.
    @Test func sumsFoldedInTurnsEqualTheRowsAddedOneByOne() {
        var random = SplitMix(seed: 0x5eed_f01d)
        let slots = 7
        var expected = Array(repeating: ExponentialBuckets(), count: slots)
        var sums = ExponentialSums(slots: slots)
        var appended = 0
        var rows = 0
        while appended < 2 * ExponentialSums.pendingLimit + 12_345 {
            let slot = random.next(below: slots)
            var row = ExponentialBuckets()
            for _ in 0..<(1 + random.next(below: 60)) {
                row.observe(nanoseconds: random.next(below: 17) == 0 ? 0 : Distribution.allCases[slot % 6].sample(&random))
            }
            expected[slot].add(row)
            let encoded = ExponentialEncoding.encode(row)
            #expect(encoded.withUnsafeBytes { sums.add(encoded: $0, to: slot) })
            appended += row.indices.count
            rows += 1
        }
        sums.markIncomplete(3)
        expected[3].add(ExponentialBuckets(zeroCount: 0, indices: [], counts: [], isComplete: false))
        sums.finish()
        #expect(rows > 1_000)
        for slot in 0..<slots { #expect(sums.buckets(ofSlot: slot) == expected[slot], "slot \(slot)") }
        // Rows added after a finish are summed on top of what was finished.
        var more = ExponentialBuckets()
        more.observe(nanoseconds: 1_234_567)
        #expect(ExponentialEncoding.encode(more).withUnsafeBytes { sums.add(encoded: $0, to: 0) })
        expected[0].add(more)
        sums.finish()
        #expect(sums.buckets(ofSlot: 0) == expected[0])
    }

    /// A batch's aggregation counts each series-minute's slot in one of three ways (few
    /// observations: sorted; many in a narrow range: dense; many in a wide one: sorted by the
    /// library): every way must count what observing the events one by one counts.
    @Test(arguments: [1, 7, 40, 600, 5000])
    func aBatchCountsWhatItsEventsCountOneByOne(events: Int) throws {
        var random = SplitMix(seed: UInt64(events) &* 31)
        let distributions = Distribution.allCases
        func seconds(_ nanoseconds: Int64) -> String { "\(nanoseconds / second)." + String(String(nanoseconds % second + second).dropFirst()) }
        var body: [String] = []
        for i in 0..<events {
            // Few label sets, so that slots gather many observations; zeros among them.
            let ttfb = random.next(below: 9) == 0 ? 0 : min(distributions[i % distributions.count].sample(&random), 3600 * second)
            let parsing = Distribution.tiny.sample(&random)
            let minute = Int64(random.next(below: 3))
            body.append(
                #"{"endpoint": "/e\#(random.next(below: 3))", "provider": "p\#(random.next(below: 2))", "stages": {"# +
                #""backend_fetch": \#(seconds(ttfb)), "request_parsing": \#(seconds(parsing)), "other": \#(seconds(Distribution.wide.sample(&random)))}, "#
                + #""timestamp": \#(testNow.seconds - 60 * minute - 1)}"#
            )
        }
        let batch = try decodeBatch("[" + body.joined(separator: ",") + "]")
        #expect(batch.acceptedCount == events)
        var fromColumns = RollupDelta()
        fromColumns.add(batch.columns, layouts: .seed)
        var fromEvents = RollupDelta()
        for event in batch.events { fromEvents.add(event, layouts: .seed) }
        #expect(fromColumns.counts(layouts: .seed) == fromEvents.counts(layouts: .seed))
        let observed = fromColumns.counts(layouts: .seed).values.reduce(UInt64(0)) { $0 + $1.exponential.count }
        #expect(observed == fromColumns.counts(layouts: .seed).values.reduce(UInt64(0)) { $0 + $1.count })
    }

    @Test func zerosAreCountedApartAndIncompleteBucketsDoNotAnswer() {
        var buckets = ExponentialBuckets()
        for _ in 0..<3 { buckets.observe(nanoseconds: 0) }
        buckets.observe(nanoseconds: 2 * second)
        #expect(buckets.zeroCount == 3 && buckets.count == 4)
        #expect(buckets.quantile(0.5) == 0)
        #expect(abs(buckets.quantile(1) - 2) / 2 < 0.011)
        #expect(ExponentialBuckets().quantile(0.5).isNaN)
        var partial = buckets
        partial.add(.unrecorded)
        #expect(!partial.isComplete && partial.quantile(0.5).isNaN)
    }
}

@Suite struct ExponentialEncodingTests {
    @Test func encodingsRoundTripAndSumAsTheirBucketsDo() throws {
        var random = SplitMix(seed: 99)
        for _ in 0..<200 {
            var left = ExponentialBuckets()
            var right = ExponentialBuckets()
            for _ in 0..<Int.random(in: 0...300, using: &random) { left.observe(nanoseconds: Bool.random(using: &random) ? Distribution.wide.sample(&random) : 0) }
            for _ in 0..<Int.random(in: 0...300, using: &random) { right.observe(nanoseconds: Distribution.bimodal.sample(&random)) }
            let a = ExponentialEncoding.encode(left)
            let b = ExponentialEncoding.encode(right)
            #expect(a.withUnsafeBytes { ExponentialEncoding.decode($0) } == left)
            var expected = left
            expected.add(right)
            let sum = try #require(a.withUnsafeBytes { a in b.withUnsafeBytes { b in ExponentialEncoding.sum(a, b) } })
            #expect(sum.withUnsafeBytes { ExponentialEncoding.decode($0) } == expected)
            #expect(sum == ExponentialEncoding.encode(expected))
        }
        // Steps that grow when merged: the second list's first index, written as a step from 0,
        // becomes a step from the first list's last (one byte to five); counts that carry over.
        let edges: [Int32] = [ExponentialBuckets.storedIndices.lowerBound, -1913, -64, -63, -1, 0, 1, 63, 64, 1050, ExponentialBuckets.storedIndices.upperBound]
        for low in edges {
            for high in edges where high > low {
                for count in [UInt64(1), 127, UInt64.max / 2] {
                    let left = ExponentialBuckets(zeroCount: count, indices: [low], counts: [count])
                    let right = ExponentialBuckets(zeroCount: 0, indices: [low, high], counts: [count, count])
                    var expected = left
                    expected.add(right)
                    let a = ExponentialEncoding.encode(left)
                    let b = ExponentialEncoding.encode(right)
                    let both = ExponentialEncoding.encode(ExponentialBuckets(zeroCount: 0, indices: [high], counts: [count]))
                    #expect(a.withUnsafeBytes { a in b.withUnsafeBytes { b in ExponentialEncoding.sum(a, b) } } == ExponentialEncoding.encode(expected))
                    #expect(both.withUnsafeBytes { h in a.withUnsafeBytes { a in ExponentialEncoding.sum(h, a) } } == a.withUnsafeBytes { a in both.withUnsafeBytes { h in ExponentialEncoding.sum(a, h) } })
                }
            }
        }
        // Damaged bytes are refused, not summed.
        let good = ExponentialEncoding.encode(ExponentialBuckets(zeroCount: 1, indices: [3, 5], counts: [2, 1]))
        for damaged in [Array(good.dropLast()), [7] + good.dropFirst(), good + [0]] {
            #expect(damaged.withUnsafeBytes { d in good.withUnsafeBytes { g in ExponentialEncoding.sum(d, g) } } == nil)
        }
    }

    /// A stored row with indices far apart (written by hand into the store, or by a disk's damage)
    /// is refused where it is read: summing it trapped on overflow, or made a dense run of 16 GB.
    @Test func storedIndicesOutsideTheirRangeAreDamageNotATrap() {
        // Indices Int32.min and Int32.max, a count of one each: the row that crash-looped a server.
        let spread: [UInt8] = [0x06, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x1f, 0x01]
        let edge = ExponentialEncoding.encode(ExponentialBuckets(zeroCount: 0, indices: [ExponentialBuckets.storedIndices.upperBound], counts: [1]))
        let past = ExponentialEncoding.encode(ExponentialBuckets(zeroCount: 0, indices: [ExponentialBuckets.storedIndices.upperBound + 1], counts: [1]))
        #expect(edge.withUnsafeBytes { ExponentialEncoding.decode($0) } != nil)
        // A step past Int64 (found by the fuzzer): overflowed while adding, before the range check.
        let stepPastInt64: [UInt8] = [0x06, 0x00, 0x02, 0x5f, 0xfe, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x02]
        for damaged in [spread, past, stepPastInt64] {
            #expect(damaged.withUnsafeBytes { ExponentialEncoding.decode($0) } == nil)
            #expect(damaged.withUnsafeBytes { d in edge.withUnsafeBytes { e in ExponentialEncoding.sum(d, e) } } == nil)
            var span = ExponentialSpan()
            #expect(!damaged.withUnsafeBytes { span.add(encoded: $0) })
            #expect(span.buckets == ExponentialBuckets())
        }
        // A row damaged after its first buckets adds none of them.
        var sums = ExponentialSums(slots: 1)
        let half = Array(good(3).dropLast())
        #expect(!half.withUnsafeBytes { sums.add(encoded: $0, to: 0) })
        #expect(edge.withUnsafeBytes { sums.add(encoded: $0, to: 0) })
        sums.finish()
        #expect(sums.buckets(ofSlot: 0) == ExponentialBuckets(zeroCount: 0, indices: [ExponentialBuckets.storedIndices.upperBound], counts: [1]))
    }

    private func good(_ zeros: UInt64) -> [UInt8] {
        ExponentialEncoding.encode(ExponentialBuckets(zeroCount: zeros, indices: [3, 5, 9], counts: [2, 1, 4]))
    }
}
