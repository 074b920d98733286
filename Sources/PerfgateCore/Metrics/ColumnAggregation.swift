/// Counts a decoded batch's observations by interned numbers, then names each series once.
///
/// An event's observations fall in series keyed by its endpoint and minute (the frontend sum and
/// each stage) or by its provider, model, endpoint and minute (TTFB and streaming). Both keys are
/// looked up once per event, and not at all when they equal the previous event's, so the cost
/// per observation is an array index, an exponential bucket index (which gives the classic bucket
/// too, by a table) and an append. Strings are touched once per series.
struct ColumnAggregation {
    private struct EndpointMinute: Hashable {
        let endpoint: Int32
        let minute: Minute
    }

    private struct PairMinute: Hashable {
        let provider: Int32
        let model: Int32
        let endpoint: Int32
        let minute: Minute
    }

    private let layouts: BucketLayouts
    private let stageNameCount: Int
    /// Slots (indices into `keys`) of each endpoint-minute's series, flat: the frontend series,
    /// then one per stage name number. -1 until used.
    private var endpointIndex: [EndpointMinute: Int] = [:]
    private var endpointSlots: [Int] = []
    /// Slots of each provider-model-endpoint-minute's series, flat: TTFB, then streaming.
    private var pairIndex: [PairMinute: Int] = [:]
    private var pairSlots: [Int] = []
    /// Per slot: its series-minute, where its buckets start in `buckets`, and its sum.
    private var keys: [RollupKey] = []
    private var bucketStarts: [Int] = []
    private var buckets: [UInt64] = []
    private var exponentials: ExponentialTally
    private var sums: [Int128] = []
    /// Set when each observation is kept as it is rather than counted (a small body).
    private let keepsObservations: Bool
    private var observations: [RollupObservation] = []
    private let columns: EventColumns

    /// At most how many observations the batch's events make.
    static func observationCount(_ columns: EventColumns) -> Int {
        // Every stage observes once, and at most three families more per event.
        columns.stages.count + 3 * columns.events.count
    }

    private init(columns: EventColumns, layouts: BucketLayouts, keepsObservations: Bool = false) {
        self.columns = columns
        self.layouts = layouts
        self.stageNameCount = columns.stageNames.count
        self.keepsObservations = keepsObservations
        let observationCount = Self.observationCount(columns)
        if keepsObservations {
            exponentials = ExponentialTally(capacity: 0)
            observations.reserveCapacity(observationCount)
            keys.reserveCapacity(observationCount)
            return
        }
        exponentials = ExponentialTally(capacity: observationCount)
        // Room for the series-minutes of a small body at once: a one-event body would otherwise
        // grow each working array three or four times (about 20 of its allocations). Large
        // bodies repeat series, so they are left to grow to what they use.
        let slots = min(observationCount, 64)
        keys.reserveCapacity(slots)
        bucketStarts.reserveCapacity(slots)
        sums.reserveCapacity(slots)
        // The most buckets a family has: its bounds and +Inf.
        let bucketsPerSlot = layouts.upperBoundRanges.reduce(0) { max($0, $1.count) } + 1
        buckets.reserveCapacity(slots * bucketsPerSlot)
        exponentials.reserveSlots(slots)
        endpointSlots.reserveCapacity(min(columns.events.count, 4) * (1 + stageNameCount))
        pairSlots.reserveCapacity(min(columns.events.count, 4) * 2)
    }

    /// The batch's observations, each with its buckets found, and the series-minutes they fall in.
    static func observations(_ columns: EventColumns, layouts: BucketLayouts) -> (keys: [RollupKey], observations: [RollupObservation]) {
        var aggregation = ColumnAggregation(columns: columns, layouts: layouts, keepsObservations: true)
        aggregation.run()
        return (aggregation.keys, aggregation.observations)
    }

    /// The counts of every series-minute the batch's events observe.
    static func gather(_ columns: EventColumns, layouts: BucketLayouts) -> [(key: RollupKey, counts: HistogramCounts)] {
        var aggregation = ColumnAggregation(columns: columns, layouts: layouts)
        aggregation.run()
        let exponentials = aggregation.exponentials.buckets()
        return aggregation.keys.indices.map { slot in
            let start = aggregation.bucketStarts[slot]
            let count = aggregation.layouts[aggregation.keys[slot].series.metric].bucketCount
            let counts = HistogramCounts(
                buckets: Array(aggregation.buckets[start..<(start + count)]), exponential: exponentials[slot],
                sumNanoseconds: aggregation.sums[slot]
            )
            return (aggregation.keys[slot], counts)
        }
    }

    private mutating func run() {
        let roles = columns.stageNames.strings.map(EventDerivation.StageRole.init(name:))
        var lastEndpoint: (key: EndpointMinute, index: Int)?
        var lastPair: (key: PairMinute, index: Int)?
        let bounds = layouts.allUpperBounds
        let boundRanges = layouts.upperBoundRanges
        ExponentialBuckets.withIndexer { indexer in
        layouts.withClassicByExponential { classicByExponential in
        bounds.withUnsafeBufferPointer { bounds in
        columns.stages.withUnsafeBufferPointer { stages in
            for event in columns.events {
                let minute = event.timestamp.minute
                let endpointKey = EndpointMinute(endpoint: event.endpoint, minute: minute)
                let pairKey = PairMinute(provider: event.provider, model: event.model, endpoint: event.endpoint, minute: minute)
                let endpoint = lastEndpoint?.key == endpointKey ? lastEndpoint!.index : endpointIndex(endpointKey)
                let pair = lastPair?.key == pairKey ? lastPair!.index : pairIndex(pairKey)
                lastEndpoint = (endpointKey, endpoint)
                lastPair = (pairKey, pair)

                let first = event.stages.lowerBound
                EventDerivation.forEachObservation(
                    stageCount: event.stages.count,
                    stage: { (roles[Int(stages[first + $0].name)], stages[first + $0].nanoseconds) }
                ) { metric, stage, nanoseconds in
                    let name = stage.map { Int(stages[first + $0].name) }
                    let entry =
                        switch metric {
                        case .requestStageDuration: endpoint + 1 + name!
                        case .frontendProcessing: endpoint
                        case .backendTTFB: pair
                        case .streamingDuration: pair + 1
                        }
                    var slot = metric == .backendTTFB || metric == .streamingDuration ? pairSlots[entry] : endpointSlots[entry]
                    if slot < 0 {
                        slot = newSlot(metric, event, name: name, minute)
                        if metric == .backendTTFB || metric == .streamingDuration { pairSlots[entry] = slot } else { endpointSlots[entry] = slot }
                    }
                    // The exponential index gives the classic bucket too, unless the exponential
                    // bucket holds one of the classic bounds: then the bounds are searched.
                    let index = nanoseconds > 0 ? indexer.index(nanoseconds: nanoseconds) : nil
                    let classic = index.flatMap { classicByExponential.bucket(of: metric, exponentialIndex: $0) }
                        ?? BucketLayout.bucketIndex(of: nanoseconds, in: UnsafeBufferPointer(rebasing: bounds[boundRanges[metric.rawValue]]))
                    if keepsObservations {
                        observations.append(
                            RollupObservation(key: Int32(slot), bucket: Int32(classic), exponentialIndex: index, nanoseconds: nanoseconds)
                        )
                        return
                    }
                    buckets[bucketStarts[slot] + classic] &+= 1
                    exponentials.observe(slot: slot, index: index)
                    sums[slot] += Int128(nanoseconds)
                }
            }
        }
        }
        }
        }
    }

    /// Where an endpoint-minute's slots start in `endpointSlots`.
    private mutating func endpointIndex(_ key: EndpointMinute) -> Int {
        if let index = endpointIndex[key] { return index }
        let index = endpointSlots.count
        endpointIndex[key] = index
        endpointSlots.append(contentsOf: repeatElement(-1, count: 1 + stageNameCount))
        return index
    }

    /// Where a pair-minute's slots start in `pairSlots`.
    private mutating func pairIndex(_ key: PairMinute) -> Int {
        if let index = pairIndex[key] { return index }
        let index = pairSlots.count
        pairIndex[key] = index
        pairSlots.append(contentsOf: [-1, -1])
        return index
    }

    /// Starts the counts of a series-minute seen for the first time, naming it with strings.
    private mutating func newSlot(_ metric: HistogramMetric, _ event: EventColumns.Event, name: Int? = nil, _ minute: Minute) -> Int {
        let labels = columns.labels.strings
        let series = EventDerivation.seriesKey(
            metric,
            stage: name.map { columns.stageNames.strings[$0] },
            endpoint: labels[Int(event.endpoint)],
            provider: labels[Int(event.provider)],
            model: labels[Int(event.model)]
        )
        keys.append(RollupKey(series: series, minute: minute))
        if keepsObservations { return keys.count - 1 }
        bucketStarts.append(buckets.count)
        buckets.append(contentsOf: repeatElement(0, count: layouts[metric].bucketCount))
        exponentials.addSlot()
        sums.append(0)
        return keys.count - 1
    }
}
