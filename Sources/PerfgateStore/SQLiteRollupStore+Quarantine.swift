import CSQLite
import PerfgateCore

extension SQLiteRollupStore {
    /// Moves every row that cannot be read back into the `quarantined_*` tables, in one
    /// transaction on the writer; returns each, described. Rows a server reads are the same rows,
    /// checked the same way: what a server would skip at every read is set aside once.
    package func quarantineDamagedRows() async throws -> [String] {
        try await onWriter { [layouts] side in
            let connection = side.connection
            let now = SystemWallClock().now().seconds
            var moved: [String] = []
            try connection.transaction {
                // Series: a name that does not read takes the series out; a base that does not
                // read is emptied (its counts were skipped at every read anyway).
                var widths: [SeriesID: Int] = [:]
                var doomedSeries: [(SeriesID, String)] = []
                var doomedBases: [(SeriesID, String)] = []
                let series = try connection.prepare("SELECT id, metric, label_values, base_buckets, base_exponential FROM series")
                while try series.step() {
                    let id = series.int64(0)
                    let key: SeriesKey
                    do {
                        key = try SeriesText.key(metric: series.text(1), labelValues: series.text(2), id: id)
                    } catch {
                        doomedSeries.append((id, "\(error)"))
                        continue
                    }
                    let width = layouts[key.metric].bucketCount
                    widths[id] = width
                    guard !series.isNull(3) || !series.isNull(4) else { continue }
                    let damage: String? = series.withBlob(4) { exponential in
                        guard !series.isNull(3) else {
                            return !exponential.isEmpty && ExponentialEncoding.decode(exponential) == nil ? "damaged exponential buckets" : nil
                        }
                        return series.withBlob(3) { RowDamage.counts(bucketBytes: $0, exponential: exponential, expected: width) }
                    }
                    if let damage { doomedBases.append((id, "base of series \(id): \(damage)")) }
                }
                var doomedRollups: [(minute: Int64, series: SeriesID, reason: String)] = []
                let rollups = try connection.prepare("SELECT minute, series_id, buckets, exponential FROM rollup")
                while try rollups.step() {
                    let (minute, id) = (rollups.int64(0), rollups.int64(1))
                    let damage: String? =
                        if let width = widths[id] {
                            rollups.withBlob(2) { buckets in rollups.withBlob(3) { RowDamage.counts(bucketBytes: buckets, exponential: $0, expected: width) } }
                        } else {
                            "no such series"
                        }
                    if let damage { doomedRollups.append((minute, id, "rollup of series \(id) at minute \(minute): \(damage)")) }
                }
                var doomedSpans: [(high: Int64, low: Int64, span: Int64, reason: String)] = []
                let spans = try connection.prepare("SELECT trace_high, trace_low, span_id, received_at, span FROM pending_span")
                while try spans.step() {
                    let readable = spans.withBlob(4) { OTLPSpan(encoded: $0.assumingMemoryBound(to: UInt8.self)) } != nil
                    if !readable {
                        doomedSpans.append((spans.int64(0), spans.int64(1), spans.int64(2), "a row of pending_span received at \(spans.int64(3)): damaged"))
                    }
                }

                // Each row is copied with why and when, then deleted, by the same key.
                func move(_ copy: SQLiteStatement, _ delete: SQLiteStatement, key: [Int64], reason: String) throws {
                    for statement in [copy, delete] {
                        for (index, value) in key.enumerated() { statement.bind(Int32(index + 1), value) }
                    }
                    copy.bind(Int32(key.count + 1), reason)
                    copy.bind(Int32(key.count + 2), now)
                    try copy.run()
                    try delete.run()
                    moved.append(reason)
                }
                let copyRollup = try connection.prepare(
                    "INSERT INTO quarantined_rollup SELECT minute, series_id, buckets, sum_s, sum_ns, exponential, ?3, ?4 FROM rollup WHERE minute = ?1 AND series_id = ?2"
                )
                let deleteRollup = try connection.prepare("DELETE FROM rollup WHERE minute = ?1 AND series_id = ?2")
                for (minute, id, reason) in doomedRollups {
                    try move(copyRollup, deleteRollup, key: [minute, id], reason: reason)
                }
                let copySeries = try connection.prepare(
                    """
                    INSERT INTO quarantined_series
                    SELECT id, metric, label_values, base_buckets, base_sum_s, base_sum_ns, base_exponential, exponential_complete, ?2, ?3 FROM series WHERE id = ?1
                    """
                )
                let deleteSeries = try connection.prepare("DELETE FROM series WHERE id = ?1")
                let emptyBase = try connection.prepare("UPDATE series SET base_buckets = NULL, base_sum_s = 0, base_sum_ns = 0, base_exponential = NULL WHERE id = ?1")
                for (id, reason) in doomedSeries + doomedBases {
                    copySeries.bind(1, id)
                    copySeries.bind(2, reason)
                    copySeries.bind(3, now)
                    try copySeries.run()
                    let change = widths[id] == nil ? deleteSeries : emptyBase
                    change.bind(1, id)
                    try change.run()
                    moved.append(reason)
                }
                let copySpan = try connection.prepare(
                    "INSERT INTO quarantined_pending_span SELECT trace_high, trace_low, span_id, received_at, span, ?4, ?5 FROM pending_span WHERE trace_high = ?1 AND trace_low = ?2 AND span_id = ?3"
                )
                let deleteSpan = try connection.prepare("DELETE FROM pending_span WHERE trace_high = ?1 AND trace_low = ?2 AND span_id = ?3")
                for (high, low, span, reason) in doomedSpans {
                    try move(copySpan, deleteSpan, key: [high, low, span], reason: reason)
                }
            }
            return moved
        }
    }

}
