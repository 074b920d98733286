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
    /// Counts per series-minute.
    public private(set) var counts: [RollupKey: HistogramCounts] = [:]
    /// How many events the delta holds.
    public private(set) var eventCount = 0

    /// An empty delta.
    public init() {}

    /// Adds an event's observations, each into its bucket of `layouts`.
    public mutating func add(_ event: TimingEvent, layouts: BucketLayouts) {
        let minute = event.timestamp.minute
        EventDerivation.forEachObservation(of: event) { series, nanoseconds in
            let layout = layouts[series.metric]
            let key = RollupKey(series: series, minute: minute)
            counts[key, default: HistogramCounts(bucketCount: layout.bucketCount)]
                .observe(nanoseconds: nanoseconds, bucket: layout.bucketIndex(for: nanoseconds))
        }
        eventCount += 1
    }

    /// Adds the observations of a decoded batch's events, each into its bucket of `layouts`.
    public mutating func add(_ columns: EventColumns, layouts: BucketLayouts) {
        for (key, gathered) in ColumnAggregation.gather(columns, layouts: layouts) {
            add(gathered, to: key)
        }
        eventCount += columns.events.count
    }

    private mutating func add(_ added: HistogramCounts, to key: RollupKey) {
        if counts[key] == nil { counts[key] = added } else { counts[key]!.add(added) }
    }

    /// Adds another delta's counts.
    public mutating func merge(_ other: RollupDelta) {
        for (key, value) in other.counts {
            add(value, to: key)
        }
        eventCount += other.eventCount
    }

    /// True when there is nothing to write.
    public var isEmpty: Bool { counts.isEmpty }
}
