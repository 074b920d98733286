-- perfgate's store: one row per series, one row per series per minute.
-- Sums are exact nanoseconds split into whole seconds and the remainder, so they never overflow.
-- Bucket counts are BLOBs of little-endian 64-bit integers, one per bucket, +Inf last.

-- The bucket bounds each histogram family was written with (seconds, comma-separated).
CREATE TABLE bucket_layout (
    metric TEXT PRIMARY KEY,
    bounds TEXT NOT NULL
) STRICT;

-- A series: a family and its label values (joined by U+001F, which label values cannot hold).
-- base_* holds what pruned minutes counted, so cumulative totals survive pruning exactly.
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    metric TEXT NOT NULL,
    label_values TEXT NOT NULL,
    base_buckets BLOB,
    base_sum_s INTEGER NOT NULL DEFAULT 0,
    base_sum_ns INTEGER NOT NULL DEFAULT 0,
    UNIQUE (metric, label_values)
) STRICT;

-- What a series counted in one minute (minute = Unix seconds / 60).
CREATE TABLE rollup (
    minute INTEGER NOT NULL,
    series_id INTEGER NOT NULL REFERENCES series (id),
    buckets BLOB NOT NULL,
    sum_s INTEGER NOT NULL,
    sum_ns INTEGER NOT NULL,
    PRIMARY KEY (minute, series_id)
) STRICT, WITHOUT ROWID;
