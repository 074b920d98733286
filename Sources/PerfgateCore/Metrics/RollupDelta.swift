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

/// One observation with its buckets found: what a small body hands the writer instead of counts.
package struct RollupObservation: Sendable, Equatable {
    /// Its series-minute, by position in `RollupDelta.observedKeys`.
    package var key: Int32
    /// Its classic bucket in the family's layout.
    package var bucket: Int32
    /// Its exponential bucket; nil for a duration of zero.
    package var exponentialIndex: Int32?
    package var nanoseconds: Int64
}

/// Counts to add to one-minute rollups, gathered from a batch of events before they are written.
///
/// A small body's observations are kept one by one (`observations`) rather than as counts: counts
/// are a few arrays per series-minute, each built on the event loop and freed by the writer,
/// while a body of one event observes each of its series-minutes once. The writer counts them
/// into the commit's own counts.
package struct RollupDelta: Sendable {
    /// Counts per series-minute, each series-minute once.
    package private(set) var entries: [(key: RollupKey, counts: HistogramCounts)] = []
    /// Single observations, besides `entries`.
    package private(set) var observations: [RollupObservation] = []
    /// The series-minutes `observations` fall in, each once.
    package private(set) var observedKeys: [RollupKey] = []
    /// Bodies with at most this many observations are kept as observations.
    package static let mostObservations = 64
    /// Where each series-minute is in `entries`; made only when a second batch or single counts
    /// are added. One batch's series-minutes are distinct already, and hashing every one of them
    /// (label strings) cost a few percent of ingest.
    private var positions: [RollupKey: Int]?
    /// How many events the delta holds.
    package private(set) var eventCount = 0

    /// An empty delta.
    package init() {}

    /// The counts by series-minute.
    package func counts(layouts: BucketLayouts) -> [RollupKey: HistogramCounts] {
        var counts = Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0.counts) })
        for (key, observed) in zip(observedKeys, observedCounts(layouts: layouts)) {
            if counts[key] == nil { counts[key] = observed } else { counts[key]!.add(observed) }
        }
        return counts
    }

    /// The single observations counted, one counts per series-minute of `observedKeys`.
    private func observedCounts(layouts: BucketLayouts) -> [HistogramCounts] {
        var counts = observedKeys.map { HistogramCounts(bucketCount: layouts[$0.series.metric].bucketCount) }
        for observation in observations { counts[Int(observation.key)].observe(observation) }
        return counts
    }

    /// Adds the observations of a decoded batch's events, each into its bucket of `layouts`.
    package mutating func add(_ columns: EventColumns, layouts: BucketLayouts) {
        if isEmpty, ColumnAggregation.observationCount(columns) <= Self.mostObservations {
            (observedKeys, observations) = ColumnAggregation.observations(columns, layouts: layouts)
            eventCount += columns.events.count
            return
        }
        foldObservations(layouts: layouts)
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
    package mutating func add(_ added: HistogramCounts, to key: RollupKey, layouts: BucketLayouts) {
        foldObservations(layouts: layouts)
        add(added, to: key)
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

    /// Counts `count` more events in the delta (their counts added with `add(_:to:)`).
    package mutating func addEvents(_ count: Int) {
        eventCount += count
    }

    /// Turns the single observations into counts, before counts are added.
    private mutating func foldObservations(layouts: BucketLayouts) {
        guard !observations.isEmpty else { return }
        let counted = zip(observedKeys, observedCounts(layouts: layouts))
        observations = []
        observedKeys = []
        for (key, counts) in counted { add(counts, to: key) }
    }

    /// True when there is nothing to write.
    package var isEmpty: Bool { entries.isEmpty && observations.isEmpty }
}
