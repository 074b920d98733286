/// A series in a given minute: the unit of persistence.
package struct RollupKey: Hashable, Sendable {
    /// The series.
    package var series: SeriesKey
    /// The minute its observations fall in.
    package var minute: Minute

    /// A series-minute.
    package init(series: SeriesKey, minute: Minute) {
        self.series = series
        self.minute = minute
    }
}

/// Counts to add to one-minute rollups, gathered from a batch of events before they are written.
package struct RollupDelta: Sendable {
    /// Counts per series-minute, each series-minute once.
    package private(set) var entries: [(key: RollupKey, counts: HistogramCounts)] = []
    /// Where each series-minute is in `entries`; made only when a second batch or single counts
    /// are added. One batch's series-minutes are distinct already, and hashing every one of them
    /// (label strings) cost a few percent of ingest.
    private var positions: [RollupKey: Int]?
    /// How many events the delta holds.
    package private(set) var eventCount = 0

    /// An empty delta.
    package init() {}

    /// The counts by series-minute.
    package var counts: [RollupKey: HistogramCounts] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0.counts) })
    }

    /// Adds the observations of a decoded batch's events, each into its bucket of `layouts`.
    package mutating func add(_ columns: EventColumns, layouts: BucketLayouts) {
        let gathered = ColumnAggregation.gather(columns, layouts: layouts)
        if entries.isEmpty {
            entries = gathered
            positions = nil
        } else {
            for (key, counts) in gathered { add(counts, to: key) }
        }
        eventCount += columns.events.count
    }

    /// Adds counts to one series-minute.
    package mutating func add(_ added: HistogramCounts, to key: RollupKey) {
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

    /// Counts `count` more events in the delta (their counts added with `add(_:to:)`).
    package mutating func addEvents(_ count: Int) {
        eventCount += count
    }

    /// True when there is nothing to write.
    package var isEmpty: Bool { entries.isEmpty }
}
