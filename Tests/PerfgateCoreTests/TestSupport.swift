import PerfgateCore
import PerfgateTestSupport
import Testing

/// 2026-11-29T04:00:00Z, the instant most tests run at.
let testNow = Timestamp(seconds: 1_795_924_800)

/// Decodes `body` with `BatchDecoder`, checking that the reference decoder it replaced reads
/// it the same way: every test of the decoder is also a test of their agreement.
func decodeBatch(_ body: String, format: BodyFormat = .json, limits: IngestLimits = IngestLimits(), now: Timestamp = testNow) throws(BodyError) -> DecodedBatch {
    try decodeBatch(Array(body.utf8), format: format, limits: limits, now: now)
}

func decodeBatch(_ body: [UInt8], format: BodyFormat = .json, limits: IngestLimits = IngestLimits(), now: Timestamp = testNow) throws(BodyError) -> DecodedBatch {
    let rules = EventRules(limits: limits, now: now)
    let result = Result { () throws(BodyError) in try BatchDecoder(rules: rules).decode(body, format: format) }
    let reference = Result { () throws(BodyError) in try ReferenceBatchDecoder(rules: rules).decode(body, format: format) }
    switch (result, reference) {
    case (.success(let batch), .success(let expected)):
        #expect(batch.events == expected.events, "events of \(String(decoding: body, as: UTF8.self))")
        #expect(batch.rejections == expected.rejections, "rejections of \(String(decoding: body, as: UTF8.self))")
        #expect(batch.total == expected.total)
    case (.failure(let error), .failure(let expected)):
        #expect(error == expected, "error for \(String(decoding: body, as: UTF8.self))")
    default:
        Issue.record("the decoders disagree on \(String(decoding: body, as: UTF8.self)): \(result) vs \(reference)")
    }
    return try result.get()
}

func event(
    endpoint: String = "/v1/chat/completions", provider: String = "openrouter", model: String = "gpt-4o",
    stages: [(String, Int64)], at timestamp: Timestamp = testNow
) -> TimingEvent {
    TimingEvent(
        endpoint: endpoint, provider: provider, model: model,
        stages: stages.map { Stage(name: $0.0, nanoseconds: $0.1) }, timestamp: timestamp
    )
}

let ms: Int64 = 1_000_000
let second: Int64 = 1_000_000_000

