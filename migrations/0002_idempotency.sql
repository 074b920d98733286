-- Answers to ingest requests sent with an Idempotency-Key. Each is written in the same
-- transaction as the counts its request added, so a retry after any crash either finds the
-- answer (and applies nothing) or finds that nothing was applied.
CREATE TABLE idempotent_answer (
    key TEXT PRIMARY KEY,
    -- A fingerprint of the request body, to refuse a key reused for another batch.
    body_fingerprint INTEGER NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    -- Unix seconds; answers older than --idempotency-ttl are neither returned nor kept.
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotent_answer_created_at ON idempotent_answer (created_at);
