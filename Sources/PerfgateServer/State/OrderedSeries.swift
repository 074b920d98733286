import PerfgateCore

/// One family's series in `SeriesKey` order, as `/metrics` lists them, with their positions.
///
/// Kept sorted as series are added (rare) so that a scrape (often) neither sorts nor looks
/// anything up: it takes the array as it is, a copy-on-write copy made under the lock in
/// constant time, and the writer pays for the copy on its next change, off the scrape's path.
struct OrderedSeries {
    private(set) var samples: [HistogramSample] = []
    private(set) var ids: [SeriesID] = []
    private var positions: [SeriesID: Int] = [:]

    /// Past this many new series at once, appending and sorting beats inserting one by one.
    private static let insertLimit = 16

    /// Adds new series, keeping the order.
    mutating func insert(_ added: [(id: SeriesID, sample: HistogramSample)]) {
        guard !added.isEmpty else { return }
        if added.count <= Self.insertLimit {
            for (id, sample) in added {
                let position = insertionPoint(of: sample.key)
                samples.insert(sample, at: position)
                ids.insert(id, at: position)
            }
        } else {
            let merged = (zip(ids, samples).map { ($0, $1) } + added.map { ($0.id, $0.sample) }).sorted { $0.1.key < $1.1.key }
            ids = merged.map(\.0)
            samples = merged.map(\.1)
        }
        positions = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
    }

    /// Drops the series among `removed` that this family holds.
    mutating func remove(_ removed: Set<SeriesID>) {
        guard removed.contains(where: { positions[$0] != nil }) else { return }
        let kept = ids.indices.filter { !removed.contains(ids[$0]) }
        samples = kept.map { samples[$0] }
        ids = kept.map { ids[$0] }
        positions = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
    }

    /// Adds counts to series `id`; returns its key, or nil when the family has no such series.
    mutating func add(_ counts: HistogramCounts, to id: SeriesID) -> SeriesKey? {
        guard let position = positions[id] else { return nil }
        samples[position].counts.add(counts)
        return samples[position].key
    }

    /// Sets the counts of series `id`; true when they changed.
    mutating func replace(_ counts: HistogramCounts, of id: SeriesID) -> Bool {
        guard let position = positions[id], samples[position].counts != counts else { return false }
        samples[position].counts = counts
        return true
    }

    /// The sample of series `id`, if the family has it.
    func sample(of id: SeriesID) -> HistogramSample? {
        positions[id].map { samples[$0] }
    }

    private func insertionPoint(of key: SeriesKey) -> Int {
        var low = 0
        var high = samples.count
        while low < high {
            let middle = (low + high) / 2
            if samples[middle].key < key { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
