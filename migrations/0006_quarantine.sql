-- Rows `perfgate check --quarantine` took out of the tables a server reads because they could not
-- be read back: kept as they were, with why and when (Unix seconds), for an operator to look at,
-- and to put back by hand once repaired. A server never reads these tables.
CREATE TABLE quarantined_rollup (
    minute INTEGER,
    series_id INTEGER,
    buckets BLOB,
    sum_s INTEGER,
    sum_ns INTEGER,
    exponential BLOB,
    reason TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL
);

-- A series whose name cannot be read (the series is removed), or whose base cannot (the base is
-- emptied and the series stays).
CREATE TABLE quarantined_series (
    id INTEGER,
    metric TEXT,
    label_values TEXT,
    base_buckets BLOB,
    base_sum_s INTEGER,
    base_sum_ns INTEGER,
    base_exponential BLOB,
    exponential_complete INTEGER,
    reason TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL
);

CREATE TABLE quarantined_pending_span (
    trace_high INTEGER,
    trace_low INTEGER,
    span_id INTEGER,
    received_at INTEGER,
    span BLOB,
    reason TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL
);
