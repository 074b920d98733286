import PerfgateTestSupport
import Testing

@testable import PerfgateCore

@Suite struct OTLPTests {
    static let now = Timestamp(nanoseconds: 1_764_000_000_000_000_000)
    static let rules = EventRules(limits: IngestLimits(), now: now)

    static func json(_ text: String, maxSpans: Int = 10) throws(TraceDecodingError) -> DecodedTraces {
        try Array(text.utf8).withUnsafeBufferPointer { buffer throws(TraceDecodingError) in
            try TraceRequestDecoder.json(buffer, maxSpans: maxSpans, keptValueBytes: OTLPSpan.keptValueBytes(IngestLimits()))
        }
    }

    static func decode(_ bytes: [UInt8], maxSpans: Int = 1000) throws(TraceDecodingError) -> DecodedTraces {
        try bytes.withUnsafeBufferPointer { buffer throws(TraceDecodingError) in try TraceRequestDecoder.protobuf(buffer, maxSpans: maxSpans, keptValueBytes: OTLPSpan.keptValueBytes(IngestLimits())) }
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
        var call = Self.span(1, 3, parent: 2, name: "backend_fetch", duration: 1_697_000_000, [.requestModel: "gpt-4o", .operationName: "chat"])
        call.kind = .client
        call.firstChunkNanoseconds = 412_000_001
        call.requestStream = true
        let spans = [remote, call]
        let decoded = try Self.decode(OTLPExports.request(spans))
        // Only the seed's stage names are kept of a span's name.
        remote.name = ""
        #expect(decoded.spans == [remote, call])
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
        let decoded = try Self.json(body)
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
            #expect(throws: TraceDecodingError.self) { _ = try Self.json(bad) }
            do { _ = try Self.json(bad) } catch { #expect(error.message.contains(words), "\(bad)") }
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

    /// What a set of counted parts comes to per trace start: each stage's total and the
    /// labels, whatever parts the events were counted in.
    struct Request: Hashable {
        let endpoint: String, timestamp: Int64
        var stages: [String: Int64] = [:]
        var backendLabels: Set<[String]> = []
    }

    static func requests(_ parts: [EventShape: Int]) -> [Int64: Request] {
        var requests: [Int64: Request] = [:]
        for (shape, count) in parts {
            for _ in 0..<count {
                var request = requests[shape.timestamp] ?? Request(endpoint: shape.endpoint, timestamp: shape.timestamp)
                for (stage, nanoseconds) in shape.stages {
                    request.stages[stage, default: 0] += nanoseconds
                    if EventDerivation.StageRole(name: stage).isBackend { request.backendLabels.insert([shape.provider, shape.model]) }
                }
                requests[shape.timestamp] = request
            }
        }
        return requests
    }

    /// However a trace's spans are ordered and split across requests, the events are those of
    /// one request holding them all, as long as no span comes after its local root: exporters send
    /// spans as they end, and a span ends before its parent does.
    @Test(arguments: 1...20)
    func theEventsDoNotDependOnOrderOrSplit(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        let spans = Self.randomTraces(12, using: &rng)
        let whole = TraceAssembly.assemble(spans, rules: Self.rules)
        #expect(whole.pending.allSatisfy { $0.settlement != nil })
        #expect(whole.columns.events.count == whole.counted)

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
        while !shuffled.isEmpty {
            let take = min(shuffled.count, Int.random(in: 1...5, using: &rng))
            // Sent twice within a request (a span given twice counts once).
            let part = TraceAssembly.assemble(pending + shuffled.prefix(take) + shuffled.prefix(1), rules: Self.rules)
            shuffled.removeFirst(take)
            pending = part.pending
            found.merge(Self.shapes(part.columns), uniquingKeysWith: +)
        }
        #expect(pending.allSatisfy { $0.settlement != nil })
        #expect(found == Self.shapes(whole.columns))
    }

    /// A model call as the official OpenAI instrumentation traces it behind a Flask server span:
    /// the server span ends at the response's head, the HTTP client span under the call then,
    /// and the call (and the stream) later.
    static func streamedRequest(
        _ trace: UInt64, start: Int64, firstByte: Int64, stream: Int64, using rng: inout some RandomNumberGenerator
    ) -> (early: [OTLPSpan], late: [OTLPSpan], expected: [String: Int64]) {
        let frontend = Int64.random(in: 100_000...9_000_000, using: &rng)
        var root = span(trace, 1, name: "POST /v1/chat/completions", start: start, duration: frontend + firstByte + 500_000, [.httpRoute: "/v1/chat/completions"])
        root.kind = .server
        var call = span(trace, 2, parent: 1, name: "chat m", start: start + frontend, duration: firstByte + stream,
                        [.operationName: "chat", .providerName: "openai", .requestModel: "gpt-\(trace % 3)"])
        call.kind = .client
        var head = span(trace, 3, parent: 2, name: "POST", start: start + frontend + 50_000, duration: firstByte - 50_000, [.httpMethod: "POST"])
        head.kind = .client
        let parsing = span(trace, 4, parent: 1, name: "parse", start: start + 10, duration: 1_000, [.stage: "input_check"])
        return ([parsing, head, root], [call], [
            "input_check": 1_000, "frontend_processing": frontend, "backend_fetch": firstByte, "stream_processing": stream,
        ])
    }

    /// Spans that end after their root complete its event: whatever the split, each request is
    /// counted once, with every stage, exactly, under the model call's labels.
    @Test(arguments: 1...20)
    func spansAfterTheirRootCompleteItsEvent(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        var arrivals: [OTLPSpan] = []
        var expected: [Int64: [String: Int64]] = [:]
        for trace in UInt64(1)...10 {
            let start = Int64(trace) * 1_000_000_000 + Int64.random(in: 0..<1_000_000, using: &rng)
            // Streams from 0.2 s to 60 s; the first byte from 30 ms to 2 s.
            let request = Self.streamedRequest(
                trace, start: start, firstByte: Int64.random(in: 30_000_000...2_000_000_000, using: &rng),
                stream: Int64.random(in: 200_000_000...60_000_000_000, using: &rng), using: &rng
            )
            arrivals += request.early.shuffled(using: &rng)
            arrivals += request.late
            expected[Int64(Self.span(trace, 1, name: "", start: start, duration: 0).startNanoseconds)] = request.expected
        }
        // Any grouping into exports that keeps each trace's spans in the order they end.
        var pending: [OTLPSpan] = []
        var found: [EventShape: Int] = [:]
        var counted = 0
        var completed = 0
        var index = 0
        while index < arrivals.count {
            let take = min(arrivals.count - index, Int.random(in: 1...4, using: &rng))
            let part = TraceAssembly.assemble(pending + arrivals[index..<(index + take)], rules: Self.rules)
            index += take
            pending = part.pending
            counted += part.counted
            completed += part.completed
            found.merge(Self.shapes(part.columns), uniquingKeysWith: +)
        }
        let requests = Self.requests(found)
        #expect(requests.count == 10 && counted == 10)
        for (timestamp, request) in requests {
            #expect(request.stages == expected[timestamp])
            #expect(request.endpoint == "/v1/chat/completions")
            #expect(request.backendLabels.count == 1 && request.backendLabels.first?[0] == "openai")
        }
        // Every request ends whole: nothing is left to wait.
        #expect(pending.isEmpty)
        // A late span sent again while its root is kept adds nothing, and is remembered once.
        var kept = TraceAssembly.assemble(arrivals.filter { $0.spanID == 1 || $0.spanID == 4 }, rules: Self.rules).pending
        for _ in 0..<3 {
            let again = TraceAssembly.assemble(kept + arrivals.filter { $0.spanID == 4 }, rules: Self.rules)
            #expect(again.columns.events.isEmpty)
            kept = again.pending
        }
        #expect(kept.allSatisfy { $0.settlement?.members == [4] })
        // An export sent again after the trace was counted adds nothing.
        let again = TraceAssembly.assemble(arrivals, rules: Self.rules)
        #expect(Self.requests(Self.shapes(again.columns)).mapValues(\.stages) == expected)
    }

    /// The time to first byte comes from the best signal a trace holds, and none is invented.
    @Test func theModelCallIsTimedFromTheBestSignalItsTraceHolds() {
        func stages(_ change: (inout OTLPSpan) -> Void, child: Bool = false) -> [String: Int64]? {
            var root = Self.span(1, 1, name: "GET", duration: 900_000_000, [.httpRoute: "/chat"])
            root.kind = .server
            var call = Self.span(1, 2, parent: 1, name: "chat", start: 5_000_000, duration: 800_000_000, [.operationName: "chat", .providerName: "openai", .requestModel: "m"])
            call.kind = .client
            change(&call)
            var head = Self.span(1, 3, parent: 2, name: "POST", start: 6_000_000, duration: 294_000_000, [.httpRequestMethod: "POST"])
            head.kind = .client
            let outcome = TraceAssembly.assemble([root, call] + (child ? [head] : []), rules: Self.rules)
            return Self.requests(Self.shapes(outcome.columns)).values.first?.stages
        }
        // gen_ai.response.time_to_first_chunk wins.
        #expect(stages({ $0.firstChunkNanoseconds = 123_456_789 }, child: true)
            == ["frontend_processing": 5_000_000, "backend_fetch": 123_456_789, "stream_processing": 676_543_211])
        // Else the HTTP client span under the call, which ends at the response's head.
        #expect(stages({ _ in }, child: true) == ["frontend_processing": 5_000_000, "backend_fetch": 295_000_000, "stream_processing": 505_000_000])
        // A first chunk said to come after the call ended is no signal.
        #expect(stages({ $0.firstChunkNanoseconds = 900_000_000 }, child: true) == ["frontend_processing": 5_000_000, "backend_fetch": 295_000_000, "stream_processing": 505_000_000])
        // The HTTP client span wins over the stream flag: the body after the head is the stream.
        #expect(stages({ $0.requestStream = false }, child: true) == ["frontend_processing": 5_000_000, "backend_fetch": 295_000_000, "stream_processing": 505_000_000])
        // Else a call that says it did not stream is its own time to first byte.
        #expect(stages({ $0.requestStream = false }) == ["frontend_processing": 5_000_000, "backend_fetch": 800_000_000])
        // A streamed call, or one that does not say, with no signal: the frontend only.
        #expect(stages({ $0.requestStream = true }) == ["frontend_processing": 5_000_000])
        #expect(stages({ _ in }) == ["frontend_processing": 5_000_000])
        // A server span is never the model call; agent operations are not model calls.
        #expect(stages({ $0.kind = .server }) == nil)
        #expect(stages({ $0.attributes[.operationName] = "invoke_agent" }) == nil)
        // Explicit stage spans win over the conventions.
        #expect(stages({ $0.attributes[.stage] = "backend_fetch" }, child: true) == ["frontend_processing": 5_000_000, "backend_fetch": 800_000_000])
    }

    /// What comes after the event was counted either completes it or is refused and said, never
    /// lost in silence: a second span of a stage already counted is refused (a histogram
    /// observation cannot be amended); an HTTP client span arriving after its model call splits
    /// the call then.
    @Test func spansAfterTheCountAreCountedOrRefusedNeverLostInSilence() {
        var root = Self.span(1, 1, name: "GET", duration: 900_000_000, [.httpRoute: "/chat"])
        root.kind = .server
        let first = Self.span(1, 2, parent: 1, name: "db", start: 1_000, duration: 100_000_000, [.stage: "db_query"])
        let second = Self.span(1, 3, parent: 1, name: "db", start: 2_000, duration: 300_000_000, [.stage: "db_query"])
        let counted = TraceAssembly.assemble([first, root], rules: Self.rules)
        #expect(Self.requests(Self.shapes(counted.columns)).values.first?.stages == ["db_query": 100_000_000])
        let after = TraceAssembly.assemble(counted.pending + [second], rules: Self.rules)
        #expect(after.columns.events.isEmpty)
        #expect(after.refused.map(\.reason) == [.stageCounted] && after.refusedSpans == 1)
        // Sent again, the span counted first adds nothing and is not refused.
        let again = TraceAssembly.assemble(counted.pending + [first], rules: Self.rules)
        #expect(again.columns.events.isEmpty && again.refused.isEmpty)

        // A model call that came without a signal is kept; its HTTP client span splits it later.
        var call = Self.span(2, 2, parent: 1, name: "chat", start: 5_000_000, duration: 800_000_000, [.operationName: "chat", .providerName: "openai", .requestModel: "m"])
        call.kind = .client
        var head = Self.span(2, 3, parent: 2, name: "POST", start: 6_000_000, duration: 294_000_000, [.httpRequestMethod: "POST"])
        head.kind = .client
        var server = Self.span(2, 1, name: "GET", duration: 900_000_000, [.httpRoute: "/chat"])
        server.kind = .server
        let unsplit = TraceAssembly.assemble([server, call], rules: Self.rules)
        #expect(Self.requests(Self.shapes(unsplit.columns)).values.first?.stages == ["frontend_processing": 5_000_000])
        let split = TraceAssembly.assemble(unsplit.pending + [head], rules: Self.rules)
        #expect(Self.requests(Self.shapes(split.columns)).values.first?.stages == ["backend_fetch": 295_000_000, "stream_processing": 505_000_000])
        #expect(split.pending.isEmpty && split.refused.isEmpty)
    }

    /// Of several model calls, the request's backend is the last generation started: a chat after
    /// its embeddings, a provider's fallback after the provider that failed.
    @Test func theBackendIsTheLastGenerationOfSeveralModelCalls() {
        func call(_ id: UInt64, _ operation: String, _ provider: String, start: Int64) -> OTLPSpan {
            var span = Self.span(1, id, parent: 1, name: "call", start: start, duration: 100_000_000, [.operationName: operation, .providerName: provider, .requestModel: "m"])
            span.kind = .client
            span.requestStream = false
            return span
        }
        let root = Self.span(1, 1, name: "POST", duration: 900_000_000, [.httpRoute: "/chat"])
        for (calls, provider) in [
            ([call(2, "embeddings", "e", start: 1_000), call(3, "chat", "c", start: 200_000_000)], "c"),
            ([call(2, "chat", "failed", start: 1_000), call(3, "chat", "fallback", start: 300_000_000)], "fallback"),
            ([call(2, "chat", "c", start: 1_000), call(3, "embeddings", "e", start: 300_000_000)], "c"),
        ] {
            let outcome = TraceAssembly.assemble([root] + calls, rules: Self.rules)
            #expect(Self.shapes(outcome.columns).keys.first?.provider == provider)
        }
        // An empty parent id in OTLP/JSON is no parent, as empty bytes are in protobuf.
        let decoded = try? Self.json(#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "parentSpanId": ""}]}]}]}"#)
        #expect(decoded?.spans.first?.isLocalRoot == true && decoded?.refused.isEmpty == true)
    }

    /// A settlement is the store's, never a sender's: one written into a request is ignored.
    @Test func aSettlementSentInARequestIsIgnored() throws {
        var root = Self.span(1, 1, name: "GET", duration: 9, [.httpRoute: "/x"])
        root.settlement = OTLPSpan.Settlement()
        root.settlement?.stages = ["backend_fetch"]
        let decoded = try Self.decode(OTLPExports.request([root]))
        #expect(decoded.spans.first?.settlement == nil)
        let stored = root.encoded().withUnsafeBufferPointer { OTLPSpan(encoded: $0) }
        #expect(stored?.settlement?.stages == ["backend_fetch"])
    }

    /// A waiting span costs a bounded number of bytes whatever its sender put in it.
    @Test func aSpanKeepsABoundedNumberOfBytes() throws {
        var span = Self.span(1, 2, parent: 1, name: String(repeating: "n", count: 1 << 20), duration: 1)
        for key in OTLPSpan.Key.allCases { span.attributes[key] = String(repeating: "é", count: 1 << 19) }
        let decoded = try Self.decode(OTLPExports.request([span]))
        let kept = try #require(decoded.spans.first)
        #expect(kept.name.isEmpty)
        #expect(OTLPSpan.Key.allCases.allSatisfy { kept.attributes[$0]!.utf8.count <= 129 })
        #expect(kept.encoded().count < 2_000)
        // Cut at a character boundary, and still too long to count.
        #expect(kept.attributes[.httpRoute]!.utf8.count == 128)
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
        #expect(rooted.columns.events.count == 1 && rooted.pending.count == 1 && rooted.pending[0].settlement?.members.count == Int(length) - 1)
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
        #expect(refused.refused.first?.message.contains("more than the limit of 100 (--max-spans-per-trace)") == true)
        #expect(TraceAssembly.assemble(Array(big.dropLast()), rules: rules).columns.events.count == 1)

        let stages = [Self.span(2, 1, name: "POST", duration: 9, [.httpRoute: "/x"])] + (2...40).map { Self.span(2, UInt64($0), parent: 1, name: "s", duration: 1, [.stage: "stage_\($0)"]) }
        let tooMany = TraceAssembly.assemble(stages, rules: Self.rules)
        #expect(tooMany.columns.events.isEmpty && tooMany.refusedSpans == 40)
        #expect(tooMany.refused.first?.message.contains("times 39 stages, more than the limit of 32") == true)
    }
}
