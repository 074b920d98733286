import PerfgateTestSupport
import Testing

@testable import PerfgateCore

@Suite struct OTLPTests {
    static let now = Timestamp(nanoseconds: 1_764_000_000_000_000_000)
    static let rules = EventRules(limits: IngestLimits(), now: now)

    static func decode(_ bytes: [UInt8], maxSpans: Int = 1000) throws(TraceDecodingError) -> DecodedTraces {
        try bytes.withUnsafeBufferPointer { buffer throws(TraceDecodingError) in try TraceRequestDecoder.protobuf(buffer, maxSpans: maxSpans) }
    }

    static func span(
        _ trace: UInt64, _ id: UInt64, parent: UInt64 = 0, name: String, start: Int64 = 0, duration: Int64, _ attributes: [OTLPSpan.Key: String] = [:]
    ) -> OTLPSpan {
        var span = OTLPSpan(traceID: TraceID(high: 7, low: trace), spanID: id)
        span.parentSpanID = parent
        span.name = name
        span.startNanoseconds = UInt64(now.nanoseconds - 60_000_000_000 + start)
        span.endNanoseconds = span.startNanoseconds + UInt64(duration)
        for (key, value) in attributes { span.attributes[key] = value }
        return span
    }

    @Test func spansSurviveTheRoundTripThroughTheWireFormat() throws {
        var remote = Self.span(1, 2, parent: 9, name: "handler", duration: 5, [.httpRoute: "/chat", .providerName: "openrouter"])
        remote.parentIsRemote = true
        let spans = [remote, Self.span(1, 3, parent: 2, name: "backend_fetch", duration: 1_697_000_000, [.requestModel: "gpt-4o"])]
        let decoded = try Self.decode(OTLPExports.request(spans))
        #expect(decoded.spans == spans)
        #expect(decoded.refused.isEmpty)
        #expect(decoded.spans[0].isLocalRoot && !decoded.spans[1].isLocalRoot)
    }

    @Test(arguments: [
        ([0x0A, 0xFF], "the message ends inside a varint at byte 1"),
        ([0x0A, 0x05, 0x12], "a length of 5 bytes runs past the end of its message (1 bytes left) at byte 1"),
        ([0x0B], "field 1 has wire type 3, which OTLP does not use at byte 0"),
        ([0x09, 1, 2, 3, 4, 5, 6, 7, 8], "ExportTraceServiceRequest field 1 must be length-delimited, got fixed64"),
        ([0x10] + Array(repeating: 0xFF, count: 10) + [0x01], "a varint is longer than 64 bits at byte 1"),
        ([0x00], "field number 0 is out of range at byte 0"),
    ] as [([UInt8], String)])
    func bodiesThatAreNotExportsAreRefusedSayingWhereTheyBreak(body: [UInt8], words: String) {
        #expect {
            _ = try Self.decode(body)
        } throws: { error in
            (error as? TraceDecodingError)?.message.contains(words) == true
        }
    }

    @Test func spansWithUnusableIdsAreRefusedAloneAndTheRestCounts() throws {
        var zeroTrace = Self.span(0, 1, name: "x", duration: 1)
        zeroTrace.traceID = TraceID(high: 0, low: 0)
        let decoded = try Self.decode(OTLPExports.request([zeroTrace, Self.span(1, 2, name: "y", duration: 1)]))
        #expect(decoded.spans.count == 1)
        #expect(decoded.refused.count == 1)
        #expect(decoded.refused[0].place == "resourceSpans[0].scopeSpans[0].spans[0]")
        #expect(decoded.refused[0].reason.contains("trace id must be 16 bytes"))
        #expect(throws: TraceDecodingError.self) { _ = try Self.decode(OTLPExports.request([Self.span(1, 2, name: "y", duration: 1)]), maxSpans: 0) }
    }

    @Test func jsonIdsAreHexAndNumbersMayBeStrings() throws {
        let body = #"""
            {"resourceSpans": [{"scopeSpans": [{"spans": [
              {"traceId": "000000000000000700000000000000AB", "spanId": "0000000000000001", "name": "backend_fetch",
               "startTimeUnixNano": "100", "endTimeUnixNano": 1e3, "flags": 768,
               "attributes": [{"key": "http.route", "value": {"stringValue": "/r"}}, {"key": "n", "value": {"intValue": "5"}}]},
              {"traceId": "xyz", "spanId": "0000000000000002"}
            ]}]}]}
            """#
        let decoded = try TraceRequestDecoder.json(Array(body.utf8), maxSpans: 10)
        #expect(decoded.spans.count == 1 && decoded.refused.count == 1)
        let span = decoded.spans[0]
        #expect(span.traceID == TraceID(high: 7, low: 0xAB) && span.spanID == 1)
        #expect(span.startNanoseconds == 100 && span.endNanoseconds == 1000 && span.parentIsRemote)
        #expect(span.attributes[.httpRoute] == "/r")
        for (bad, words) in [
            (#"{"resourceSpans": {}}"#, "resourceSpans must be an array"),
            (#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": 5}]}]}]}"#, "spans[0].spanId must be a string of hex digits"),
            (#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": 1.5}]}]}]}"#, "startTimeUnixNano must be a whole number"),
            (#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "k", "value": 3}]}]}]}]}"#, "attributes[0].value must be an object"),
        ] {
            #expect(throws: TraceDecodingError.self) { _ = try TraceRequestDecoder.json(Array(bad.utf8), maxSpans: 10) }
            do { _ = try TraceRequestDecoder.json(Array(bad.utf8), maxSpans: 10) } catch { #expect(error.message.contains(words), "\(bad)") }
        }
    }

    /// An event's content, whatever the numbering of its interned labels.
    struct EventShape: Hashable {
        let endpoint: String, provider: String, model: String, timestamp: Int64
        let stages: [String: Int64]
    }

    static func shapes(_ columns: EventColumns) -> [EventShape: Int] {
        var shapes: [EventShape: Int] = [:]
        for event in columns.events {
            var stages: [String: Int64] = [:]
            for stage in columns.stages[event.stages] { stages[columns.stageNames.strings[Int(stage.name)]] = stage.nanoseconds }
            let shape = EventShape(
                endpoint: columns.labels.strings[Int(event.endpoint)], provider: columns.labels.strings[Int(event.provider)],
                model: columns.labels.strings[Int(event.model)], timestamp: event.timestamp.nanoseconds, stages: stages
            )
            shapes[shape, default: 0] += 1
        }
        return shapes
    }

    /// Random traces: a root, stage spans at random depths (under the root or under each other),
    /// spans that are no stage, labels on random spans.
    static func randomTraces(_ count: Int, using rng: inout some RandomNumberGenerator) -> [OTLPSpan] {
        var spans: [OTLPSpan] = []
        let stageNames = ["request_parsing", "auth_validation", "backend_fetch", "stream_processing"]
        for trace in 1...UInt64(count) {
            var ids: [UInt64] = [1]
            var root = span(trace, 1, name: "POST", start: Int64.random(in: 0..<1_000_000_000, using: &rng), duration: 5, [.httpRoute: "/r\(trace % 3)"])
            if Bool.random(using: &rng) { root.attributes[.providerName] = "p\(trace % 2)" }
            spans.append(root)
            for id in UInt64(2)...UInt64(Int.random(in: 2...7, using: &rng)) {
                let parent = ids.randomElement(using: &rng)!
                let isStage = Int.random(in: 0..<4, using: &rng) > 0
                var child = span(
                    trace, id, parent: parent, name: isStage ? stageNames.randomElement(using: &rng)! : "db query",
                    start: Int64.random(in: 0..<1000, using: &rng), duration: Int64.random(in: 0..<3_000_000_000, using: &rng)
                )
                if Int.random(in: 0..<5, using: &rng) == 0 { child.attributes[.stage] = "cache_lookup" }
                if Int.random(in: 0..<3, using: &rng) == 0 { child.attributes[.requestModel] = "m\(id % 3)" }
                spans.append(child)
                ids.append(id)
            }
        }
        return spans
    }

    /// However a trace's spans are ordered and split across requests, the events are those of
    /// one request holding them all, as long as no span comes after its local root: exporters send
    /// spans as they end, and a span ends before its parent does.
    @Test(arguments: 1...20)
    func theEventsDoNotDependOnOrderOrSplit(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        let spans = Self.randomTraces(12, using: &rng)
        let whole = TraceAssembly.assemble(spans, rules: Self.rules)
        #expect(whole.pending.isEmpty)
        #expect(whole.columns.events.count + whole.withoutStages == 12)

        // Any interleaving of the traces, each root after the rest of its trace.
        var left: [TraceID: Int] = [:]
        for span in spans where !span.isLocalRoot { left[span.traceID, default: 0] += 1 }
        var deferred: [TraceID: OTLPSpan] = [:]
        var shuffled: [OTLPSpan] = []
        for span in spans.shuffled(using: &rng) {
            if span.isLocalRoot && left[span.traceID, default: 0] > 0 {
                deferred[span.traceID] = span
                continue
            }
            shuffled.append(span)
            guard !span.isLocalRoot else { continue }
            left[span.traceID]! -= 1
            if left[span.traceID] == 0, let root = deferred.removeValue(forKey: span.traceID) { shuffled.append(root) }
        }
        var pending: [OTLPSpan] = []
        var found: [EventShape: Int] = [:]
        var withoutStages = 0
        while !shuffled.isEmpty {
            let take = min(shuffled.count, Int.random(in: 1...5, using: &rng))
            // Sent twice within a request (a span given twice counts once).
            let part = TraceAssembly.assemble(pending + shuffled.prefix(take) + shuffled.prefix(1), rules: Self.rules)
            shuffled.removeFirst(take)
            pending = part.pending
            withoutStages += part.withoutStages
            found.merge(Self.shapes(part.columns), uniquingKeysWith: +)
        }
        #expect(pending.isEmpty)
        #expect(found == Self.shapes(whole.columns))
        #expect(withoutStages == whole.withoutStages)
    }

    @Test func labelsComeFromTheRootFirstThenTheKeysInTheirOrder() {
        let spans = [
            Self.span(1, 1, name: "POST", duration: 9, [.httpRoute: "/chat", .system: "openai"]),
            Self.span(1, 2, parent: 1, name: "backend_fetch", duration: 7, [.endpoint: "/other", .providerName: "openrouter", .model: "m1"]),
            Self.span(1, 3, parent: 2, name: "llm", duration: 3, [.stage: "backend_fetch", .requestModel: "gpt-4o"]),
        ]
        let outcome = TraceAssembly.assemble(spans, rules: Self.rules)
        let shape = Self.shapes(outcome.columns).keys.first!
        #expect(shape.endpoint == "/chat" && shape.provider == "openrouter" && shape.model == "gpt-4o")
        #expect(shape.stages == ["backend_fetch": 10])  // two spans of one stage add up
        #expect(shape.timestamp == Int64(spans[0].startNanoseconds))
    }

    @Test func eventsThatBreakARuleAreRefusedWithWhy() {
        var backwards = Self.span(2, 2, parent: 1, name: "backend_fetch", duration: 0)
        backwards.endNanoseconds = backwards.startNanoseconds - 1
        let outcome = TraceAssembly.assemble([
            Self.span(1, 1, name: "job", duration: 1), Self.span(1, 2, parent: 1, name: "stream_processing", duration: 1),
            Self.span(2, 1, name: "POST", duration: 1, [.httpRoute: "/x"]), backwards,
            Self.span(3, 1, name: "POST", duration: 1, [.httpRoute: "/x"]), Self.span(3, 2, parent: 1, name: "SELECT", duration: 1),
        ], rules: Self.rules)
        #expect(outcome.columns.events.isEmpty)
        #expect(outcome.withoutStages == 1)
        #expect(outcome.refusedSpans == 4)
        #expect(outcome.refused.map(\.reason).contains { $0.contains("no endpoint: set http.route on the root span") })
        #expect(outcome.refused.map(\.reason).contains { $0.contains("(backend_fetch) ends before it starts") })
    }

    /// Each span's root is found once: a chain of parents as long as an export may be resolves to
    /// its root (or waits, without it), a loop of parents waits, and the answer is the one a
    /// short trace of the same spans gives.
    @Test func chainsAndLoopsOfAnyLengthAreResolvedOnce() {
        let length: UInt64 = 30_000
        var limits = IngestLimits()
        limits.maxSpansPerTrace = Int(length)
        let rules = EventRules(limits: limits, now: Self.now)
        let chain = (1...length).map { Self.span(1, $0, parent: $0 == length ? 0 : $0 + 1, name: $0 == 1 ? "backend_fetch" : "work", duration: 5, $0 == length ? [.httpRoute: "/deep"] : [:]) }
        let rooted = TraceAssembly.assemble(chain.shuffled(), rules: rules)
        #expect(rooted.columns.events.count == 1 && rooted.pending.isEmpty)
        #expect(Self.shapes(rooted.columns).keys.first?.endpoint == "/deep")
        let rootless = TraceAssembly.assemble(Array(chain.dropLast()), rules: rules)
        #expect(rootless.columns.events.isEmpty && rootless.pending.count == Int(length) - 1)
        let loop = (1...length).map { Self.span(2, $0, parent: $0 % length + 1, name: "backend_fetch", duration: 1) }
        let looped = TraceAssembly.assemble(loop, rules: rules)
        #expect(looped.columns.events.isEmpty && looped.pending.count == Int(length))
        var selfParent = Self.span(3, 5, parent: 5, name: "backend_fetch", duration: 1)
        selfParent.parentIsRemote = false
        #expect(TraceAssembly.assemble([selfParent], rules: rules).pending.count == 1)
    }

    @Test func aTracePastItsSpanLimitOrStageLimitIsRefusedWhole() {
        var limits = IngestLimits()
        limits.maxSpansPerTrace = 100
        let rules = EventRules(limits: limits, now: Self.now)
        let big = [Self.span(1, 1, name: "POST", duration: 9, [.httpRoute: "/x"])] + (2...101).map { Self.span(1, UInt64($0), parent: 1, name: "backend_fetch", duration: 1) }
        let refused = TraceAssembly.assemble(big, rules: rules)
        #expect(refused.columns.events.isEmpty && refused.pending.isEmpty && refused.refusedSpans == 101)
        #expect(refused.refused.first?.reason.contains("more than the limit of 100 (--max-spans-per-trace)") == true)
        #expect(TraceAssembly.assemble(Array(big.dropLast()), rules: rules).columns.events.count == 1)

        let stages = [Self.span(2, 1, name: "POST", duration: 9, [.httpRoute: "/x"])] + (2...40).map { Self.span(2, UInt64($0), parent: 1, name: "s", duration: 1, [.stage: "stage_\($0)"]) }
        let tooMany = TraceAssembly.assemble(stages, rules: Self.rules)
        #expect(tooMany.columns.events.isEmpty && tooMany.refusedSpans == 40)
        #expect(tooMany.refused.first?.reason.contains("times 39 stages, more than the limit of 32") == true)
    }
}
