// libFuzzer harness over the OTLP trace decoders: any bytes, read as a protobuf export (or as
// OTLP/JSON when they start with `{`), must decode or be refused with a message, never crash; a
// decoded span must survive the store's encoding unchanged, and assembling the spans must keep
// every span accounted for. Built by scripts/fuzz into one binary with PerfgateCore's sources
// (see FuzzEntry.swift).

func fuzzTraceDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let decoded: DecodedTraces
    do {
        let kept = OTLPSpan.keptValueBytes(IngestLimits())
        decoded = size > 0 && data[0] == UInt8(ascii: "{")
            ? try TraceRequestDecoder.json(bytes, maxSpans: 1000, keptValueBytes: kept)
            : try TraceRequestDecoder.protobuf(bytes, maxSpans: 1000, keptValueBytes: kept)
    } catch {
        precondition(!error.message.isEmpty, "a refusal says why")
        return 0
    }
    for span in decoded.spans {
        precondition(!span.traceID.isZero && span.spanID != 0, "a decoded span has usable ids")
        precondition(span.settlement == nil, "a sender cannot write a settlement")
        precondition(OTLPSpan.Key.allCases.allSatisfy { (span.attributes[$0]?.utf8.count ?? 0) <= OTLPSpan.keptValueBytes(IngestLimits()) }, "values are cut")
        let encoded = span.encoded()
        precondition(encoded.withUnsafeBufferPointer { OTLPSpan(encoded: $0) } == span, "the store's encoding keeps the span")
    }
    for refusal in decoded.refused { precondition(!refusal.reason.isEmpty, "a refused span says why") }
    let rules = EventRules(limits: IngestLimits(), now: Timestamp(nanoseconds: 1_764_000_000_000_000_000))
    let outcome = TraceAssembly.assemble(decoded.spans, rules: rules)
    precondition(outcome.pending.count <= decoded.spans.count, "no span is made up")
    // Assembling what waits again, as the next export touching those traces does, counts nothing twice.
    let again = TraceAssembly.assemble(outcome.pending, rules: rules)
    precondition(again.columns.events.isEmpty || outcome.pending.contains { $0.settlement == nil }, "a settled root counts nothing again alone")
    for event in outcome.columns.events { precondition(!event.stages.isEmpty, "an event has a stage") }
    return 0
}
