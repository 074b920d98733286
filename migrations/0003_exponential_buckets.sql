-- Exponential buckets (schema 6: bounds 2^(i/64) seconds) beside the classic ones, so that
-- quantiles see changes inside a classic bucket. Format: PerfgateCore/Metrics/ExponentialEncoding.swift.
-- A rollup's exponential is NULL when it was written before this migration (or added to one
-- that was): such minutes answer from their classic buckets only.
ALTER TABLE rollup ADD COLUMN exponential BLOB;

-- What pruned minutes counted, exponentially; NULL is empty when exponential_complete is 1.
ALTER TABLE series ADD COLUMN base_exponential BLOB;
-- 1 when every observation of the series since its creation was recorded exponentially (true of
-- every series created from here on); 0 for series that already existed.
ALTER TABLE series ADD COLUMN exponential_complete INTEGER NOT NULL DEFAULT 0;
