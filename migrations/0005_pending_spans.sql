-- OTLP spans waiting for their trace's local root span (POST /v1/traces). A span is kept from the
-- commit that acknowledged it to the commit in which its root arrives and its trace becomes an
-- event, or until it has waited longer than --trace-wait and is dropped (and counted).
-- `span` is the span as an OTLP Span message of the fields perfgate reads
-- (PerfgateCore/OTLP/OTLPSpan.swift); ids are stored as their 64-bit halves' bit patterns.
CREATE TABLE pending_span (
    trace_high INTEGER NOT NULL,
    trace_low INTEGER NOT NULL,
    span_id INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    span BLOB NOT NULL,
    PRIMARY KEY (trace_high, trace_low, span_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX pending_span_received_at ON pending_span (received_at);
