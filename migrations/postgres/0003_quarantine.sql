-- Rows `perfgate check --quarantine` took out of the tables replicas read because they could not
-- be read back: kept as they were, with why and when, for an operator to look at, and to put
-- back by hand once repaired. No replica reads these tables.
CREATE TABLE quarantined_rollup (
    instance text,
    minute bigint,
    series_id bigint,
    buckets bytea,
    sum_s bigint,
    sum_ns bigint,
    exponential bytea,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE quarantined_series_base (
    instance text,
    series_id bigint,
    buckets bytea,
    sum_s bigint,
    sum_ns bigint,
    exponential bytea,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);

-- A series whose name cannot be read; its rows are quarantined with it.
CREATE TABLE quarantined_series (
    id bigint,
    metric text,
    label_values text,
    created_at timestamptz,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE quarantined_pending_span (
    trace_high bigint,
    trace_low bigint,
    span_id bigint,
    received_at bigint,
    span bytea,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
