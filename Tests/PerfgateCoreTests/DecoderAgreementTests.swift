import PerfgateCore
import PerfgateTestSupport
import Testing

/// Mutated bodies, run through both the byte-level decoder and the reference decoder it
/// replaced (via `decodeBatch`): whatever the mutation, they must agree on every event, every
/// rejection and every error message, and the batch's aggregation must equal adding its events
/// one by one; decoding each body into one batch kept across them all (as a connection's handler
/// does) must read it as a fresh batch does. Seeded, so a failure reproduces.
@Suite struct DecoderAgreementTests {
    static let seeds: [String] = [
        BatchDecoderTests.seedEvent,
        #"[{"endpoint": "/a", "stages": {"backend_fetch": 1.5, "x": 0.25}}, {"endpoint": "/b", "provider": "p", "model": "m", "stages": {"stream_processing": 2}, "timestamp": 1795924740}]"#,
        #"{"events": [{"endpoint": "/a\u00e9", "stages": {"request_parsing": 0.001}}, {"endpoint": "/a", "model": "caf\u00e9", "stages": {"y": 1e-3}}]}"#,
        "[{\"endpoint\": \"/é\", \"provider\": \"ü\", \"stages\": {\"a\": 1, \"b\": 2}, \"timestamp\": \"2026-11-29T03:59:00.5+00:00\"}]",
        // Events that repeat each other's labels and stages, as real batches do.
        "[" + Array(repeating: BatchDecoderTests.seedEvent, count: 3).joined(separator: ",") + "]",
        Array(repeating: #"{"endpoint": "/a", "provider": "p", "stages": {"backend_fetch": 1, "stream_processing": 2, "request_parsing": 0.001}}"#, count: 4).joined(separator: "\n"),
    ]

    /// Bytes a mutation may insert: JSON punctuation, quotes, escapes, digits and UTF-8 pieces.
    static let alphabet: [[UInt8]] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "-", "0", "1", ".", "e", "E", "+",
        " ", "\n", "\t", "null", "true", "NaN", "Infinity", "é", "\"endpoint\"", "\"stages\"", "\"x\"",
        "\"events\"", "\"timestamp\"", "1e400", "-1", "99999999999999999999",
    ].map { Array($0.utf8) } + [[0x00], [0xC3], [0xFF], [0xE2, 0x82]]

    @Test(arguments: 0..<6)
    func mutatedBodiesAreReadAlike(seedIndex: Int) {
        var random = SplitMix(seed: UInt64(seedIndex + 1) * 0x9E37_79B9)
        let original = Array(Self.seeds[seedIndex].utf8)
        let decoder = BatchDecoder(rules: EventRules(limits: IngestLimits(), now: testNow))
        var kept = DecodedBatch()
        for round in 0..<1500 {
            var body = original
            for _ in 0...(round % 4) {
                let position = random.next(below: body.count + 1)
                switch random.next(below: 4) {
                case 0 where !body.isEmpty:
                    body.remove(at: min(position, body.count - 1))
                case 1:
                    body.insert(contentsOf: Self.alphabet[random.next(below: Self.alphabet.count)], at: position)
                case 2 where !body.isEmpty:
                    body[min(position, body.count - 1)] = Self.alphabet[random.next(below: Self.alphabet.count)].first!
                default:
                    let end = min(body.count, position + random.next(below: 24))
                    body.insert(contentsOf: body[position..<end], at: position)
                }
            }
            let format: BodyFormat = seedIndex == 5 || round % 5 == 0 ? .ndjson : .json
            let intoKept = Result { () throws(BodyError) in try body.withUnsafeBufferPointer { buffer throws(BodyError) in try decoder.decode(buffer, format: format, into: &kept) } }
            switch (Result { () throws(BodyError) in try decodeBatch(body, format: format) }, intoKept) {
            case (.success(let batch), .success):
                #expect(kept.events == batch.events && kept.rejections == batch.rejections && kept.total == batch.total)
                #expect(kept.columns.labels.strings == batch.columns.labels.strings && kept.columns.stageNames.strings == batch.columns.stageNames.strings)
            case (.failure(let error), .failure(let keptError)):
                #expect(error == keptError)
            case (let fresh, let reused):
                Issue.record("a kept batch read \(String(decoding: body, as: UTF8.self)) otherwise: \(fresh) vs \(reused)")
            }
            guard let batch = try? decodeBatch(body, format: format) else { continue }
            // Aggregating the compact columns must count exactly what adding each event does.
            var fromColumns = RollupDelta()
            fromColumns.add(batch.columns, layouts: .seed)
            var fromEvents = RollupDelta()
            for event in batch.events { fromEvents.add(event, layouts: .seed) }
            #expect(fromColumns.counts(layouts: .seed) == fromEvents.counts(layouts: .seed))
            #expect(fromColumns.eventCount == fromEvents.eventCount)
        }
    }
}
