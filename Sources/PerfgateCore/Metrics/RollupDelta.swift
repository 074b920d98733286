/// A series in a given minute: the unit of persistence.
public struct RollupKey: Hashable, Sendable {
    /// The series.
    public var series: SeriesKey
    /// The minute its observations fall in.
    public var minute: Minute

    /// A series-minute.
    public init(series: SeriesKey, minute: Minute) {
        self.series = series
        self.minute = minute
    }
}

/// Counts to add to one-minute rollups, gathered from a batch of events before they are written.
public struct RollupDelta: Sendable {
    /// Counts per series-minute, each series-minute once.
    public private(set) var entries: [(key: RollupKey, counts: HistogramCounts)] = []
    /// Where each series-minute is in `entries`; made only when a second batch or single events
    /// are added. One batch's series-minutes are distinct already, and hashing every one of them
    /// (label strings) cost a few percent of ingest.
    private var positions: [RollupKey: Int]?
    /// How many events the delta holds.
    public private(set) var eventCount = 0

    /// An empty delta.
    public init() {}

    /// The counts by series-minute.
    public var counts: [RollupKey: HistogramCounts] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0.counts) })
    }

    /// Adds an event's observations, each into its bucket of `layouts`.
    public mutating func add(_ event: TimingEvent, layouts: BucketLayouts) {
        let minute = event.timestamp.minute
        EventDerivation.forEachObservation(of: event) { series, nanoseconds in
            let layout = layouts[series.metric]
            var observed = HistogramCounts(bucketCount: layout.bucketCount)
            observed.observe(nanoseconds: nanoseconds, bucket: layout.bucketIndex(for: nanoseconds))
            add(observed, to: RollupKey(series: series, minute: minute))
        }
        eventCount += 1
    }

    /// Adds the observations of a decoded batch's events, each into its bucket of `layouts`.
    public mutating func add(_ columns: EventColumns, layouts: BucketLayouts) {
        let gathered = ColumnAggregation.gather(columns, layouts: layouts)
        if entries.isEmpty {
            entries = gathered
            positions = nil
        } else {
            for (key, counts) in gathered { add(counts, to: key) }
        }
        eventCount += columns.events.count
    }

    private mutating func add(_ added: HistogramCounts, to key: RollupKey) {
        if positions == nil {
            positions = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.key, $0) })
        }
        if let position = positions![key] {
            entries[position].counts.add(added)
        } else {
            positions![key] = entries.count
            entries.append((key, added))
        }
    }

    /// True when there is nothing to write.
    public var isEmpty: Bool { entries.isEmpty }
}
