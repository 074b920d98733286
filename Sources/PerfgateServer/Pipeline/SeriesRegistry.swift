import PerfgateCore

/// How new series get their store identifiers.
enum SeriesNumbering {
    /// 1, 2, 3…: the store is this process's alone.
    case sequential
    /// `SeriesKey.sharedID` under the database's key: replicas of a shared store agree without
    /// asking each other.
    case shared(SeriesIDKey)
}

/// The writer's map from series to store identifiers, and the per-family series limit.
///
/// Owned by the committer alone, one commit at a time; no lock. Past a family's limit, new series are folded into
/// that family's `__overflow__` series, so totals stay right and memory stays bounded.
struct SeriesRegistry {
    private var ids: [SeriesKey: SeriesID] = [:]
    private var perMetric: [HistogramMetric: Int] = [:]
    /// The last minute each series was written in, for the idle-series TTL.
    private var lastWritten: [SeriesID: Minute] = [:]
    private var nextID: SeriesID = 1
    /// Most series per family, the overflow series aside.
    let limit: Int
    let numbering: SeriesNumbering

    /// A registry holding the series the store already has; a series with no minute in
    /// `lastMinutes` (only its pruned base is left) counts as last written at `olderThanKept`.
    init(
        records: [SeriesRecord], limit: Int, numbering: SeriesNumbering = .sequential, lastMinutes: [SeriesID: Minute] = [:],
        olderThanKept: Minute = Minute(index: 0)
    ) {
        self.limit = limit
        self.numbering = numbering
        for record in records {
            ids[record.key] = record.id
            perMetric[record.key.metric, default: 0] += 1
            lastWritten[record.id] = lastMinutes[record.id] ?? olderThanKept
            nextID = max(nextID, record.id + 1)
        }
    }

    /// Notes that series `id` was written in `minute`.
    mutating func touch(_ id: SeriesID, at minute: Minute) {
        lastWritten[id] = minute
    }

    /// The series `selector` matches.
    func records(matching selector: SeriesSelector) -> [SeriesRecord] {
        ids.compactMap { key, id in selector.matches(key) ? SeriesRecord(id: id, key: key) : nil }
    }

    /// The series last written before `cutoff`.
    func records(idleBefore cutoff: Minute) -> [SeriesRecord] {
        ids.compactMap { key, id in lastWritten[id, default: cutoff] < cutoff ? SeriesRecord(id: id, key: key) : nil }
    }

    /// Forgets deleted series; their identifiers are not handed out again.
    mutating func remove(_ records: [SeriesRecord]) {
        for record in records where ids.removeValue(forKey: record.key) != nil {
            perMetric[record.key.metric, default: 1] -= 1
            lastWritten[record.id] = nil
        }
    }

    /// The identifier for `key`, creating the series (and appending it to `created`) when new.
    /// `overflowed` is true when the family is full and the overflow series stands in.
    mutating func resolve(_ key: SeriesKey, created: inout [SeriesRecord]) -> (id: SeriesID, overflowed: Bool) {
        if let id = ids[key] { return (id, false) }
        let overflow = SeriesKey.overflow(of: key.metric)
        if key != overflow && perMetric[key.metric, default: 0] >= limit {
            return (resolve(overflow, created: &created).id, true)
        }
        let id: SeriesID
        switch numbering {
        case .sequential:
            id = nextID
            nextID += 1
        case .shared(let idKey):
            id = key.sharedID(keyedBy: idKey)
        }
        ids[key] = id
        perMetric[key.metric, default: 0] += 1
        created.append(SeriesRecord(id: id, key: key))
        return (id, false)
    }

    /// Takes in series created elsewhere (by another replica), as written at `minute`; returns
    /// those that were new here.
    mutating func adopt(_ records: [SeriesRecord], at minute: Minute) -> [SeriesRecord] {
        var added: [SeriesRecord] = []
        for record in records where ids[record.key] == nil {
            ids[record.key] = record.id
            perMetric[record.key.metric, default: 0] += 1
            lastWritten[record.id] = minute
            nextID = max(nextID, record.id + 1)
            added.append(record)
        }
        return added
    }

    /// Forgets series created for a commit that failed, so the next commit creates them again.
    mutating func forget(_ created: [SeriesRecord]) {
        for record in created {
            ids[record.key] = nil
            perMetric[record.key.metric, default: 1] -= 1
            lastWritten[record.id] = nil
        }
        if let first = created.map(\.id).min() { nextID = first }
    }
}
