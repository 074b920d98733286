extension TraceAssembly {
    /// The stages one local root's spans time: the stage spans they name, and what the GenAI
    /// conventions let perfgate read without perfgate's names (the model call's time to first
    /// byte and its stream, the frontend before it).
    struct Request {
        /// The root first, then by start time.
        let spans: [OTLPSpan]
        /// Each stage's duration, summed when a stage is timed more than once, in first-seen order.
        private(set) var stages: [(name: String, role: EventDerivation.StageRole, nanoseconds: Int64)] = []
        /// The span of the backend call: the `backend_fetch` stage span, else the model call.
        private(set) var backendSpan: OTLPSpan?
        /// Whether the backend call streamed its answer, when the spans say.
        private(set) var streamed: Bool?
        /// The spans that name each stage, by the stage's name: inferred stages have none.
        private(set) var namedBy: [String: [UInt64]] = [:]

        /// The first value of `key` on the spans, the root's first.
        func first(_ key: OTLPSpan.Key) -> String? {
            for span in spans { if let value = span.attributes[key] { return value } }
            return nil
        }

        /// The model call that is the request's backend: of several (embeddings, then a chat; a
        /// provider that failed, then its fallback), the last generation started, else the last call.
        static func modelCall(in spans: [OTLPSpan]) -> OTLPSpan? {
            var chosen: OTLPSpan?
            for span in spans where span.isModelCall {
                let generates = span.attributes[.operationName] != "embeddings"
                let chosenGenerates = chosen.map { $0.attributes[.operationName] != "embeddings" } ?? false
                // Spans come by start time: a later one of the same rank replaces the earlier.
                if chosen == nil || generates || !chosenGenerates { chosen = span }
            }
            return chosen
        }

        /// The stages of `spans`, or why they cannot make an event.
        static func read(_ spans: [OTLPSpan], rules: EventRules) -> Result<Request, Problem> {
            var request = Request(spans: spans)
            func add(_ name: String, _ nanoseconds: UInt64) {
                let clamped = Int64(clamping: nanoseconds)
                // A handful of stages: a scan beats hashing each name.
                if let at = request.stages.firstIndex(where: { $0.name == name }) {
                    request.stages[at].nanoseconds = min(request.stages[at].nanoseconds + clamped, rules.limits.maxDurationNanoseconds)
                } else {
                    request.stages.append((name, EventDerivation.StageRole(name: name), clamped))
                }
            }
            func has(_ role: EventDerivation.StageRole) -> Bool { request.stages.contains { $0.role == role } }
            func duration(_ span: OTLPSpan, _ what: String) -> Result<UInt64, Problem> {
                guard span.endNanoseconds >= span.startNanoseconds else {
                    return .failure(Problem(.spanTimes, "span \(Hex.fixed(span.spanID)) (\(what)) ends before it starts"))
                }
                let duration = span.endNanoseconds - span.startNanoseconds
                guard duration <= UInt64(rules.limits.maxDurationNanoseconds) else {
                    return .failure(Problem(.spanTimes, "span \(Hex.fixed(span.spanID)) (\(what)) lasts \(DecimalSeconds.format(nanoseconds: Int64(clamping: duration))) s, longer than \(DecimalSeconds.format(nanoseconds: rules.limits.maxDurationNanoseconds)) s"))
                }
                return .success(duration)
            }

            var explicitBackend: OTLPSpan?
            for span in spans {
                guard let name = stage(of: span) else { continue }
                switch duration(span, name) {
                case .success(let nanoseconds): add(name, nanoseconds)
                case .failure(let problem): return .failure(problem)
                }
                request.namedBy[name, default: []].append(span.spanID)
                if name == StageName.backendFetch, explicitBackend == nil { explicitBackend = span }
            }
            request.backendSpan = explicitBackend
            let explicitStream = has(.streamProcessing)
            if explicitStream { request.streamed = true }

            // Without perfgate's backend stages, the model call is the backend.
            if explicitBackend == nil, !explicitStream, let call = modelCall(in: spans) {
                request.backendSpan = call
                let whole: UInt64
                switch duration(call, call.attributes[.operationName] ?? "model call") {
                case .success(let nanoseconds): whole = nanoseconds
                case .failure(let problem): return .failure(problem)
                }
                // Time to first byte from the best signal the spans hold; the stream is the rest.
                // A first chunk said to come after the call ended is no signal.
                var firstByte: UInt64?
                if let firstChunk = call.firstChunkNanoseconds, firstChunk <= whole {
                    firstByte = firstChunk
                    request.streamed = true
                } else if let head = spans.first(where: { $0.parentSpanID == call.spanID && $0.isHTTPClient }) {
                    // The HTTP client's span ends when the response's head has arrived; what
                    // follows is the body (for an answer that did not stream, its short transfer).
                    firstByte = min(head.endNanoseconds - min(head.endNanoseconds, call.startNanoseconds), whole)
                    request.streamed = true
                } else if call.requestStream == false {
                    // A call that did not stream: its answer came whole.
                    firstByte = whole
                    request.streamed = false
                }
                // Otherwise no split is invented: the spans do not say when the answer began.
                if let firstByte {
                    add(StageName.backendFetch, firstByte)
                    if request.streamed == true { add(StageName.streamProcessing, whole - firstByte) }
                }
            }

            // An uninstrumented frontend: from the root's start to the backend call's.
            let root = spans[0]
            if let backend = request.backendSpan, !has(.frontend),
               backend.spanID != root.spanID, backend.startNanoseconds >= root.startNanoseconds {
                add(StageName.frontendProcessing, backend.startNanoseconds - root.startNanoseconds)
            }
            return .success(request)
        }
    }
}
