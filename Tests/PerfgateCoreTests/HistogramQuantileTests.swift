import PerfgateCore
import Testing

@Suite struct HistogramQuantileTests {
    let bounds = [0.1, 0.5, 1.0]
    let cumulative: [Double] = [10, 30, 60, 100]

    @Test(arguments: [
        (0.5, 0.5 + 0.5 * (20.0 / 30.0)),  // rank 50 falls in (0.5, 1]: 20 of its 30
        (0.05, 0.05),  // rank 5 in [0, 0.1]: lower bound 0 assumed
        (0.1, 0.1),  // rank 10 exactly fills the first bucket
        (0.3, 0.5),  // rank 30 exactly fills the second
        (0.95, 1.0),  // rank 95 lands in +Inf: the highest finite bound
        (1.0, 1.0),
        (0.0, 0.0),
    ])
    func interpolatesLikePromQL(q: Double, expected: Double) {
        #expect(HistogramQuantile.estimate(q, upperBounds: bounds, cumulative: cumulative) == expected)
    }

    @Test func specialCasesMatchPromQL() {
        #expect(HistogramQuantile.estimate(0.5, upperBounds: bounds, cumulative: [0, 0, 0, 0]).isNaN)
        #expect(HistogramQuantile.estimate(-0.1, upperBounds: bounds, cumulative: cumulative) == -.infinity)
        #expect(HistogramQuantile.estimate(1.1, upperBounds: bounds, cumulative: cumulative) == .infinity)
        #expect(HistogramQuantile.estimate(.nan, upperBounds: bounds, cumulative: cumulative).isNaN)
        // An empty first bucket: rank 0 divides 0 by 0, which PromQL also answers NaN.
        #expect(HistogramQuantile.estimate(0, upperBounds: bounds, cumulative: [0, 0, 5, 5]).isNaN)
        #expect(HistogramQuantile.estimate(0.5, upperBounds: bounds, cumulative: [0, 0, 5, 5]) == 0.75)
        // A first bound of 0: its quantile is 0, not an interpolation.
        #expect(HistogramQuantile.estimate(0.2, upperBounds: [0, 1], cumulative: [5, 10, 10]) == 0)
    }

    @Test func estimatesFromCountsAndALayout() throws {
        let layout = try BucketLayout(seconds: ["0.1", "0.5", "1"])
        let counts = HistogramCounts(buckets: [10, 20, 30, 40], exponential: .unrecorded, sumNanoseconds: 0)
        #expect(HistogramQuantile.estimate(0.5, counts: counts, layout: layout) == 0.5 + 0.5 * (20.0 / 30.0))
        // One observation: the rank is a fraction of it, interpolated, not rounded to a whole count.
        let one = HistogramCounts(buckets: [0, 1, 0, 0], exponential: .unrecorded, sumNanoseconds: 0)
        #expect(HistogramQuantile.estimate(0.5, counts: one, layout: layout) == 0.1 + 0.4 * 0.5)
        #expect(HistogramQuantile.estimate(0.95, counts: one, layout: layout) == 0.1 + 0.4 * 0.95)
    }
}

@Suite struct StageShareWindowTests {
    private let endpoint = "/v1/chat/completions"

    private func add(_ window: inout StageShareWindow, _ metric: HistogramMetric, _ seconds: Int64, minute: Minute) {
        let labels: [String] = switch metric {
        case .frontendProcessing: [endpoint]
        case .requestStageDuration: ["backend_fetch", endpoint]
        case .backendTTFB, .streamingDuration: ["p", "m", endpoint]
        }
        window.add(series: SeriesKey(metric, labels), minute: minute, sumNanoseconds: Int128(seconds * second))
    }

    @Test func sharesAreOfTheWholeWindowNotTheLastRequest() {
        var window = StageShareWindow(widthMinutes: 5)
        let now = testNow
        add(&window, .backendTTFB, 6, minute: now.minute)
        add(&window, .streamingDuration, 3, minute: now.minute)
        add(&window, .frontendProcessing, 1, minute: now.minute.advanced(by: -4))
        add(&window, .requestStageDuration, 100, minute: now.minute)  // not a group: ignored
        #expect(window.shares(at: now) == [StageShare(endpoint: endpoint, percentages: [10, 60, 30])])
    }

    @Test func minutesLeaveTheWindowAsTheClockMoves() {
        let clock = ManualWallClock(testNow)
        var window = StageShareWindow(widthMinutes: 5)
        add(&window, .backendTTFB, 1, minute: clock.now().minute)
        clock.advance(seconds: 60)
        add(&window, .streamingDuration, 1, minute: clock.now().minute)
        #expect(window.shares(at: clock.now()).first?.percentages == [0, 50, 50])

        clock.advance(seconds: 4 * 60)  // the first minute is now 5 minutes old: out
        #expect(window.shares(at: clock.now()).first?.percentages == [0, 0, 100])
        clock.advance(seconds: 60)
        #expect(window.shares(at: clock.now()).isEmpty)

        window.evict(at: clock.now())
        clock.set(testNow)
        #expect(window.shares(at: clock.now()).isEmpty, "evicted minutes are gone even if the clock goes back")
    }

    @Test func futureMinutesCountOnlyOnceTheyArrive() {
        var window = StageShareWindow(widthMinutes: 5)
        add(&window, .backendTTFB, 1, minute: testNow.minute.advanced(by: 2))
        #expect(window.shares(at: testNow).isEmpty)
        #expect(window.shares(at: testNow.adding(nanoseconds: 120 * second)).count == 1)
    }
}
