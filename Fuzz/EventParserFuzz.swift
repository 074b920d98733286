// libFuzzer harness over the event parser: any bytes, as a JSON body and as NDJSON, must be
// either refused whole with a BodyError or read into valid events and rejections, never crash,
// and whatever is read must aggregate. Built by scripts/fuzz into one binary with
// PerfgateCore's sources (see FuzzEntry.swift).

private let rules = EventRules(limits: IngestLimits(), now: Timestamp(seconds: 1_795_924_800))

func fuzzEventParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = UnsafeBufferPointer(start: data, count: size)
    for format in [BodyFormat.json, .ndjson] {
        guard let batch = try? BatchDecoder(rules: rules).decode(body, format: format) else { continue }
        precondition(batch.acceptedCount + batch.rejectedCount == batch.total, "every event is accepted or rejected")
        precondition(batch.rejections.allSatisfy { $0.index < batch.total && !$0.message.isEmpty }, "rejections name an event")
        var delta = RollupDelta()
        delta.add(batch.columns, layouts: .seed)
        precondition(delta.eventCount == batch.acceptedCount, "every accepted event is counted")
        let columns = batch.columns
        precondition(columns.events.count == batch.acceptedCount)
        for event in columns.events {
            precondition(!columns.labels.strings[Int(event.endpoint)].isEmpty && !event.stages.isEmpty, "accepted events have an endpoint and stages")
            precondition(columns.stages[event.stages].allSatisfy { $0.nanoseconds >= 0 }, "durations are not negative")
        }
    }
    return 0
}
