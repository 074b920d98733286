import PerfgateCore

/// 2026-11-29T04:00:00Z, the instant most tests run at.
let testNow = Timestamp(seconds: 1_795_924_800)

func decodeBatch(_ body: String, format: BodyFormat = .json, limits: IngestLimits = IngestLimits(), now: Timestamp = testNow) throws(BodyError) -> DecodedBatch {
    try BatchDecoder(rules: EventRules(limits: limits, now: now)).decode(Array(body.utf8), format: format)
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
