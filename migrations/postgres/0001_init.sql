-- perfgate's store in PostgreSQL, shared by every replica that names the same database.
-- Counts are encoded as in the SQLite store: bucket counts as little-endian 64-bit integers,
-- +Inf last; exponential buckets as PerfgateCore/Metrics/ExponentialEncoding.swift writes them;
-- sums as whole seconds and the nanoseconds beyond them.

-- The bucket bounds each histogram family was written with (seconds, comma-separated).
CREATE TABLE bucket_layout (
    metric text PRIMARY KEY,
    bounds text NOT NULL
);

-- A series: a family and its label values (joined by U+001F). Its id is a 63-bit hash of the
-- two, so replicas agree on it without asking each other; a collision is refused at insert.
CREATE TABLE series (
    id bigint PRIMARY KEY,
    metric text NOT NULL,
    label_values text NOT NULL,
    -- When the series was first written: replicas read the series created since they last
    -- looked, with a margin for transactions still open then.
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (metric, label_values)
);
CREATE INDEX series_created_at ON series (created_at);

-- What a series counted in one minute (minute = Unix seconds / 60), on one replica. Commits
-- only append: two replicas never wait for each other's rows. Each replica folds its own rows
-- of a series-minute into one every few dozen commits; readers sum the rows they find.
CREATE TABLE rollup (
    instance text NOT NULL,
    minute bigint NOT NULL,
    series_id bigint NOT NULL,
    buckets bytea NOT NULL,
    sum_s bigint NOT NULL,
    sum_ns bigint NOT NULL,
    exponential bytea NOT NULL
);
CREATE INDEX rollup_minute ON rollup (minute, series_id);
CREATE INDEX rollup_instance_minute ON rollup (instance, minute);

-- What pruned minutes counted, per replica and series, so each replica's cumulative counters
-- survive pruning exactly.
CREATE TABLE series_base (
    instance text NOT NULL,
    series_id bigint NOT NULL,
    buckets bytea NOT NULL,
    sum_s bigint NOT NULL,
    sum_ns bigint NOT NULL,
    exponential bytea NOT NULL,
    PRIMARY KEY (instance, series_id)
);

-- Answers to ingest requests sent with an Idempotency-Key, written in the same transaction as
-- the counts their request added. The key is unique across replicas: a retry that lands on
-- another replica finds the answer, or waits for the transaction that is writing it.
CREATE TABLE idempotent_answer (
    key text PRIMARY KEY,
    body_fingerprint bigint NOT NULL,
    status integer NOT NULL,
    body bytea NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX idempotent_answer_created_at ON idempotent_answer (created_at);

-- OTLP spans waiting for their trace's local root span, from whichever replica received them.
CREATE TABLE pending_span (
    trace_high bigint NOT NULL,
    trace_low bigint NOT NULL,
    span_id bigint NOT NULL,
    received_at bigint NOT NULL,
    span bytea NOT NULL,
    PRIMARY KEY (trace_high, trace_low, span_id)
);
CREATE INDEX pending_span_received_at ON pending_span (received_at);
