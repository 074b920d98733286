-- Exponential buckets of recent commits, not yet added to their minute rows. A busy minute holds
-- hundreds of exponential buckets; rewriting them at every commit made the commit's cost grow
-- with the minute. The writer appends one row per commit instead (the buckets each series-minute
-- gained), and folds the rows into rollup.exponential every few dozen commits, in a commit's
-- transaction. Readers add the rows they see to what rollup holds, in the same read transaction.
-- Format of `deltas` (PerfgateStore/ExponentialLog.swift): per series-minute, varints of the
-- series id, the minute and the byte length of an ExponentialEncoding, then the encoding.
CREATE TABLE exponential_log (
    id INTEGER PRIMARY KEY,
    deltas BLOB NOT NULL
) STRICT;
