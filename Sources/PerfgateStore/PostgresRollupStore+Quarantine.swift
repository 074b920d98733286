import NIOCore
import PerfgateCore
import PostgresNIO

extension PostgresRollupStore {
    /// Moves every row of every replica that cannot be read back into the `quarantined_*` tables,
    /// in one transaction; returns each, described. Rows are checked as the replicas check them
    /// where they read them.
    package func quarantineDamagedRows() async throws -> [String] {
        try await withConnection { [self] connection in
            try await transaction(connection) {
                var widths: [SeriesID: Int] = [:]
                var doomedSeries: [(id: SeriesID, reason: String)] = []
                for try await (id, metric, values) in try await connection.query("SELECT id, metric, label_values FROM series", logger: logger)
                    .decode((Int64, String, String).self)
                {
                    do {
                        widths[id] = layouts[try SeriesText.key(metric: metric, labelValues: values, id: id).metric].bucketCount
                    } catch {
                        doomedSeries.append((id, "\(error)"))
                    }
                }
                // Rows are named by their ctid: within this transaction, which holds them, it does not move.
                func damage(_ id: SeriesID, _ buckets: ByteBuffer, _ exponential: ByteBuffer) -> String? {
                    guard let width = widths[id] else { return "no such series" }
                    return buckets.withUnsafeReadableBytes { buckets in
                        exponential.withUnsafeReadableBytes { RowDamage.counts(bucketBytes: buckets, exponential: $0, expected: width) }
                    }
                }
                var doomedRollups: [(row: String, reason: String)] = []
                for try await (row, instance, id, minute, buckets, exponential) in try await connection.query(
                    "SELECT ctid::text, instance, series_id, minute, buckets, exponential FROM rollup", logger: logger
                ).decode((String, String, Int64, Int64, ByteBuffer, ByteBuffer).self) {
                    if let damage = damage(id, buckets, exponential) {
                        doomedRollups.append((row, "rollup of series \(id) at minute \(minute) (replica \(instance)): \(damage)"))
                    }
                }
                var doomedBases: [(row: String, reason: String)] = []
                for try await (row, instance, id, buckets, exponential) in try await connection.query(
                    "SELECT ctid::text, instance, series_id, buckets, exponential FROM series_base", logger: logger
                ).decode((String, String, Int64, ByteBuffer, ByteBuffer).self) {
                    if let damage = damage(id, buckets, exponential) {
                        doomedBases.append((row, "base of series \(id) (replica \(instance)): \(damage)"))
                    }
                }
                var doomedSpans: [(row: String, reason: String)] = []
                for try await (row, receivedAt, encoded) in try await connection.query(
                    "SELECT ctid::text, received_at, span FROM pending_span", logger: logger
                ).decode((String, Int64, ByteBuffer).self) {
                    if Array(buffer: encoded).withUnsafeBufferPointer({ OTLPSpan(encoded: $0) }) == nil {
                        doomedSpans.append((row, "a row of pending_span received at \(receivedAt): damaged"))
                    }
                }

                var moved: [String] = []
                for (row, reason) in doomedRollups {
                    try await connection.query(
                        """
                        WITH gone AS (DELETE FROM rollup WHERE ctid = \(row)::text::tid RETURNING *)
                        INSERT INTO quarantined_rollup (instance, minute, series_id, buckets, sum_s, sum_ns, exponential, reason)
                        SELECT instance, minute, series_id, buckets, sum_s, sum_ns, exponential, \(reason) FROM gone
                        """, logger: logger
                    )
                    moved.append(reason)
                }
                for (row, reason) in doomedBases {
                    try await connection.query(
                        """
                        WITH gone AS (DELETE FROM series_base WHERE ctid = \(row)::text::tid RETURNING *)
                        INSERT INTO quarantined_series_base (instance, series_id, buckets, sum_s, sum_ns, exponential, reason)
                        SELECT instance, series_id, buckets, sum_s, sum_ns, exponential, \(reason) FROM gone
                        """, logger: logger
                    )
                    moved.append(reason)
                }
                for (id, reason) in doomedSeries {
                    try await connection.query(
                        """
                        WITH gone AS (DELETE FROM series WHERE id = \(id) RETURNING *)
                        INSERT INTO quarantined_series (id, metric, label_values, created_at, reason)
                        SELECT id, metric, label_values, created_at, \(reason) FROM gone
                        """, logger: logger
                    )
                    moved.append(reason)
                }
                for (row, reason) in doomedSpans {
                    try await connection.query(
                        """
                        WITH gone AS (DELETE FROM pending_span WHERE ctid = \(row)::text::tid RETURNING *)
                        INSERT INTO quarantined_pending_span (trace_high, trace_low, span_id, received_at, span, reason)
                        SELECT trace_high, trace_low, span_id, received_at, span, \(reason) FROM gone
                        """, logger: logger
                    )
                    moved.append(reason)
                }
                return moved
            }
        }
    }
}
