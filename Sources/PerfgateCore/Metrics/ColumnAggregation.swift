/// Counts a decoded batch's observations by interned numbers, then names each series once.
///
/// An event's observations fall in series keyed by its endpoint and minute (the frontend sum and
/// each stage) or by its provider, model, endpoint and minute (TTFB and streaming). Both keys are
/// looked up once per event, and not at all when they equal the previous event's, so the cost
/// per observation is an array index and a bucket search. Strings are touched once per series.
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

    /// Slots (indices into `gathered`) of the series of one endpoint-minute; -1 until used.
    private struct EndpointSlots {
        var frontend = -1
        /// Indexed by stage name number.
        var stages: [Int]
    }

    /// Slots of the series of one provider-model-endpoint-minute; -1 until used.
    private struct PairSlots {
        var backend = -1
        var streaming = -1
    }

    private let layouts: BucketLayouts
    private let stageNameCount: Int
    private var endpointIndex: [EndpointMinute: Int] = [:]
    private var endpointSlots: [EndpointSlots] = []
    private var pairIndex: [PairMinute: Int] = [:]
    private var pairSlots: [PairSlots] = []
    /// Per slot: its series-minute, where its buckets start in `buckets`, and its sum.
    private var keys: [RollupKey] = []
    private var bucketStarts: [Int] = []
    private var buckets: [UInt64] = []
    private var sums: [Int128] = []
    private let columns: EventColumns

    private init(columns: EventColumns, layouts: BucketLayouts) {
        self.columns = columns
        self.layouts = layouts
        self.stageNameCount = columns.stageNames.count
    }

    /// The counts of every series-minute the batch's events observe.
    static func gather(_ columns: EventColumns, layouts: BucketLayouts) -> [(key: RollupKey, counts: HistogramCounts)] {
        var aggregation = ColumnAggregation(columns: columns, layouts: layouts)
        aggregation.run()
        return aggregation.keys.indices.map { slot in
            let start = aggregation.bucketStarts[slot]
            let count = aggregation.layouts[aggregation.keys[slot].series.metric].bucketCount
            let counts = HistogramCounts(buckets: Array(aggregation.buckets[start..<(start + count)]), sumNanoseconds: aggregation.sums[slot])
            return (aggregation.keys[slot], counts)
        }
    }

    private mutating func run() {
        let roles = columns.stageNames.strings.map(EventDerivation.StageRole.init(name:))
        var lastEndpoint: (key: EndpointMinute, index: Int)?
        var lastPair: (key: PairMinute, index: Int)?
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
                    var slot: Int
                    switch metric {
                    case .requestStageDuration:
                        let name = Int(stages[first + stage!].name)
                        slot = endpointSlots[endpoint].stages[name]
                        if slot < 0 {
                            slot = newSlot(metric, event, name: name, minute)
                            endpointSlots[endpoint].stages[name] = slot
                        }
                    case .frontendProcessing:
                        slot = endpointSlots[endpoint].frontend
                        if slot < 0 {
                            slot = newSlot(metric, event, minute)
                            endpointSlots[endpoint].frontend = slot
                        }
                    case .backendTTFB:
                        slot = pairSlots[pair].backend
                        if slot < 0 {
                            slot = newSlot(metric, event, minute)
                            pairSlots[pair].backend = slot
                        }
                    case .streamingDuration:
                        slot = pairSlots[pair].streaming
                        if slot < 0 {
                            slot = newSlot(metric, event, minute)
                            pairSlots[pair].streaming = slot
                        }
                    }
                    buckets[bucketStarts[slot] + layouts[metric].bucketIndex(for: nanoseconds)] &+= 1
                    sums[slot] += Int128(nanoseconds)
                }
            }
        }
    }

    private mutating func endpointIndex(_ key: EndpointMinute) -> Int {
        if let index = endpointIndex[key] { return index }
        endpointIndex[key] = endpointSlots.count
        endpointSlots.append(EndpointSlots(stages: Array(repeating: -1, count: stageNameCount)))
        return endpointSlots.count - 1
    }

    private mutating func pairIndex(_ key: PairMinute) -> Int {
        if let index = pairIndex[key] { return index }
        pairIndex[key] = pairSlots.count
        pairSlots.append(PairSlots())
        return pairSlots.count - 1
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
        bucketStarts.append(buckets.count)
        buckets.append(contentsOf: repeatElement(0, count: layouts[metric].bucketCount))
        sums.append(0)
        return keys.count - 1
    }
}
