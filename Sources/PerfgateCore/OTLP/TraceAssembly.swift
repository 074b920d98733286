/// Turns spans into timing events, one per local root span: the durations of its stage spans,
/// or of the model call the GenAI conventions describe, and the labels its spans carry.
///
/// A root's event is counted when the root arrives, with every span that came before it
/// (exporters send spans as they end, so those are all the spans that ended before the root).
/// Spans that end after their root (a streamed answer, background work the response waited
/// for) complete the event when they arrive: the root is kept with what was counted (its
/// `settlement`), and each stage is counted once. The counts depend only on the set of spans,
/// never on how they were split across requests.
package enum TraceAssembly {
    /// What a set of spans came to.
    package struct Outcome: Sendable {
        /// The events and parts of events counted, for the same aggregation as `/v1/events`.
        package var columns = EventColumns()
        /// What waits: spans whose local root has not arrived, and roots that were counted and
        /// may still be completed, with their settlement.
        package var pending: [OTLPSpan] = []
        /// Spans refused, per trace, with why.
        package var refused: [Refused] = []
        /// Local roots whose event was counted for the first time.
        package var counted = 0
        /// Counted roots completed by spans that arrived after them.
        package var completed = 0

        /// Nothing assembled yet.
        package init() {}

        /// Spans of refused events.
        package var refusedSpans: Int { refused.reduce(0) { $0 + $1.spans } }
    }

    /// A refused trace (or the part of it below one root).
    package struct Refused: Sendable {
        package var trace: TraceID
        package var spans: Int
        package var reason: TraceRefusal
        package var message: String

        /// `spans` spans of `trace` refused for `reason`, said in `message`.
        package init(trace: TraceID, spans: Int, reason: TraceRefusal, message: String) {
            self.trace = trace
            self.spans = spans
            self.reason = reason
            self.message = message
        }
    }

    /// The stage a span times: its `perfgate.stage` attribute, else its name when that is one of
    /// the seed's five stages.
    package static func stage(of span: OTLPSpan) -> String? {
        if let named = span.attributes[.stage] { return named }
        return StageName.seed.contains(span.name) ? span.name : nil
    }

    /// Assembles `spans`, the request's and those already waiting, under `rules`. Spans are
    /// told apart by trace and span id: a span given twice counts once.
    ///
    /// Linear in the spans whatever their shape: each span's local root is found once, and the
    /// spans walked on the way take the same answer (a chain of 30,000 parents took 55 s when
    /// each span walked up alone, on the writer every client waits for).
    package static func assemble(_ spans: [OTLPSpan], rules: EventRules) -> Outcome {
        var outcome = Outcome()
        var byTrace: [TraceID: [UInt64: OTLPSpan]] = [:]
        for span in spans {
            // A root sent again after it was counted keeps what was counted.
            if span.settlement == nil, byTrace[span.traceID]?[span.spanID]?.settlement != nil { continue }
            byTrace[span.traceID, default: [:]][span.spanID] = span
        }
        for trace in byTrace.keys.sorted() {
            let members = byTrace[trace]!
            let settled = members.values.filter { $0.settlement != nil }
            let held = members.count + settled.reduce(0) { $0 + $1.settlement!.members.count }
            guard held <= rules.limits.maxSpansPerTrace else {
                outcome.pending += settled
                outcome.refused.append(Refused(
                    trace: trace, spans: members.count - settled.count, reason: .traceTooLarge,
                    message: "trace \(trace): it holds \(held) spans, more than the limit of \(rules.limits.maxSpansPerTrace) (--max-spans-per-trace)"
                ))
                continue
            }
            var groups: [UInt64: [OTLPSpan]] = [:]
            var roots = LocalRoots(members, settled: settled)
            for span in members.values {
                if let root = roots.root(of: span) {
                    groups[root, default: []].append(span)
                } else {
                    outcome.pending.append(span)
                }
            }
            for root in groups.keys.sorted() {
                // One order whatever the arrival: the root first, then by start time and id.
                let ordered = groups[root]!.sorted { a, b in
                    (a.spanID != root ? 1 : 0, a.startNanoseconds, a.spanID) < (b.spanID != root ? 1 : 0, b.startNanoseconds, b.spanID)
                }
                count(ordered, of: trace, rules: rules, into: &outcome)
            }
        }
        return outcome
    }

    /// The local root each span of one trace descends from, found once per span.
    private struct LocalRoots {
        let members: [UInt64: OTLPSpan]
        /// Spans taken by a counted root in earlier requests: their descendants belong to it.
        private var taken: [UInt64: UInt64] = [:]
        /// Each span resolved so far: its root's id, or nil while an ancestor is missing (or the
        /// parents form a loop, which no tracer writes).
        private var known: [UInt64: UInt64?] = [:]

        init(_ members: [UInt64: OTLPSpan], settled: [OTLPSpan]) {
            self.members = members
            for root in settled {
                for member in root.settlement!.members { taken[member] = root.spanID }
            }
            known.reserveCapacity(members.count)
        }

        mutating func root(of span: OTLPSpan) -> UInt64? {
            var path: [UInt64] = []
            var onPath: Set<UInt64> = []
            var current = span
            var answer: UInt64?
            while true {
                if let settled = known[current.spanID] {
                    answer = settled
                    break
                }
                if current.isLocalRoot {
                    answer = current.spanID
                    path.append(current.spanID)
                    break
                }
                path.append(current.spanID)
                guard onPath.insert(current.spanID).inserted else {
                    answer = nil  // a loop
                    break
                }
                guard let parent = members[current.parentSpanID] else {
                    answer = taken[current.parentSpanID]  // nil: a missing ancestor
                    break
                }
                current = parent
            }
            for id in path { known[id] = .some(answer) }
            return answer
        }
    }

    /// Counts what one root's spans (`spans[0]` the root) add to its event, and keeps the root
    /// while later spans may complete it.
    private static func count(_ spans: [OTLPSpan], of trace: TraceID, rules: EventRules, into outcome: inout Outcome) {
        var root = spans[0]  // kept with its settlement
        let earlier = root.settlement
        func refuse(_ reason: TraceRefusal, _ message: String) {
            // A counted root stays counted; only the spans that came after it are refused.
            if earlier != nil { outcome.pending.append(root) }
            outcome.refused.append(Refused(trace: trace, spans: spans.count - (earlier == nil ? 0 : 1), reason: reason, message: "trace \(trace): \(message)"))
        }
        // Spans already taken by the counted root (an exporter's retry) add nothing again.
        let taken = Set(earlier?.members ?? [])
        let spans = taken.isEmpty ? spans : spans.enumerated().filter { $0.offset == 0 || !taken.contains($0.element.spanID) }.map(\.element)
        let request: Request
        switch Request.read(spans, rules: rules) {
        case .success(let read): request = read
        case .failure(let problem): return refuse(problem.reason, problem.message)
        }

        // Labels: those the event was first counted with, then the explicit perfgate names,
        // then what the conventions say, the model call's own attributes first.
        let endpoint = earlier?.endpoint ?? request.first(.endpoint) ?? root.attributes[.httpRoute]
        let backend = request.backendSpan
        let provider = earlier?.provider ?? request.first(.provider)
            ?? backend?.attributes[.providerName] ?? backend?.attributes[.system] ?? request.first(.providerName) ?? request.first(.system)
        let model = earlier?.model ?? request.first(.model) ?? backend?.attributes[.requestModel] ?? request.first(.requestModel)

        // Each stage counts once; the frontend stages are one observation, so they count together.
        let counted = earlier?.stages ?? []
        var fresh = request.stages
        // Spans of a stage already counted with the event came after it: a histogram observation
        // cannot be amended, so their time is refused, and said, not added to another request.
        var late: [UInt64] = []
        if !counted.isEmpty {
            let frontendCounted = counted.contains { EventDerivation.StageRole(name: $0) == .frontend }
            fresh.removeAll { stage in
                guard counted.contains(stage.name) || (frontendCounted && stage.role == .frontend) else { return false }
                late += (request.namedBy[stage.name] ?? []).filter { $0 != root.spanID }
                return true
            }
        }
        if !late.isEmpty {
            outcome.refused.append(Refused(
                trace: trace, spans: late.count, reason: .stageCounted,
                message: "trace \(trace): \(late.count) spans of stages counted with the request before they came (the first: \(Hex.fixed(late[0]))); a stage's time cannot be added to once counted"
            ))
        }

        if !fresh.isEmpty {
            guard fresh.count + counted.count <= rules.limits.maxStagesPerEvent else {
                return refuse(.tooManyStages, "it times \(fresh.count + counted.count) stages, more than the limit of \(rules.limits.maxStagesPerEvent) per request")
            }
            guard let endpoint else {
                return refuse(.noEndpoint, "no endpoint: set http.route on the root span or perfgate.endpoint on any span of the trace")
            }
            let timestamp = Timestamp(nanoseconds: Int64(clamping: root.startNanoseconds))
            if let problem = rules.checkTimestamp(timestamp) { return refuse(.timestamp, "the root span's start \(problem)") }
            let firstStage = outcome.columns.stages.count
            do throws(Problem) {
                let endpointNumber = try label(endpoint, "endpoint", rules, &outcome.columns)
                let providerNumber = try provider.map { value throws(Problem) in try label(value, "provider", rules, &outcome.columns) }
                let modelNumber = try model.map { value throws(Problem) in try label(value, "model", rules, &outcome.columns) }
                for stage in fresh {
                    let number = outcome.columns.stageNames.intern(stage.name, rule: rules.checkStageName)
                    if let problem = outcome.columns.stageNames.problems[Int(number)] { throw Problem(.invalidLabel, problem) }
                    outcome.columns.stages.append(EventColumns.StageValue(name: number, nanoseconds: stage.nanoseconds))
                }
                let unknown = providerNumber == nil || modelNumber == nil ? outcome.columns.unknown(rule: rules.checkLabelValue) : -1
                outcome.columns.events.append(EventColumns.Event(
                    endpoint: endpointNumber, provider: providerNumber ?? unknown, model: modelNumber ?? unknown, timestamp: timestamp,
                    stages: firstStage..<outcome.columns.stages.count
                ))
            } catch {
                // Interned values stay in the tables unused, as with a refused event of a JSON body.
                outcome.columns.stages.removeSubrange(firstStage...)
                return refuse(error.reason, error.message)
            }
            if counted.isEmpty { outcome.counted += 1 } else { outcome.completed += 1 }
        }

        // Nothing more can come once the backend call is counted whole: the root is let go.
        func isCounted(_ role: EventDerivation.StageRole, _ name: String) -> Bool {
            fresh.contains { $0.role == role } || counted.contains(name)
        }
        let whole = isCounted(.backendFetch, StageName.backendFetch)
            && (isCounted(.streamProcessing, StageName.streamProcessing) || request.streamed == false)
        guard !whole else { return }
        var settlement = earlier ?? OTLPSpan.Settlement()
        // A model call counted with no split is kept, so that a signal coming after it (its HTTP
        // client span, from another exporter or a retry) still times it.
        let unsplit = request.backendSpan.flatMap { call in
            call.isModelCall && !isCounted(.backendFetch, StageName.backendFetch) && call.spanID != root.spanID ? call : nil
        }
        for span in spans.dropFirst() where span.spanID != unsplit?.spanID && !late.contains(span.spanID) { settlement.members.append(span.spanID) }
        if let unsplit { outcome.pending.append(unsplit) }
        if !fresh.isEmpty {
            settlement.stages += fresh.map(\.name)
            settlement.endpoint = endpoint
            // The backend's labels are fixed once a backend stage has been counted with them.
            if fresh.contains(where: { $0.role.isBackend }) {
                settlement.provider = provider ?? "unknown"
                settlement.model = model ?? "unknown"
            }
        }
        root.settlement = settlement
        outcome.pending.append(root)
    }

    private static func label(_ value: String, _ what: String, _ rules: EventRules, _ columns: inout EventColumns) throws(Problem) -> Int32 {
        let number = columns.labels.intern(value, rule: rules.checkLabelValue)
        if let problem = columns.labels.problems[Int(number)] { throw Problem(.invalidLabel, "\(what) \(EventRules.quoted(value)) \(problem)") }
        return number
    }

    struct Problem: Error {
        let reason: TraceRefusal
        let message: String
        init(_ reason: TraceRefusal, _ message: String) {
            self.reason = reason
            self.message = message
        }
    }
}

/// Why spans were refused, as `perfgate_otlp_spans_refused_total{reason}` counts them.
package enum TraceRefusal: String, CaseIterable, Sendable {
    /// A span's trace or span id is missing, all zero or the wrong length.
    case unusableID = "unusable_id"
    /// The trace has no `http.route` on its root and no `perfgate.endpoint`.
    case noEndpoint = "no_endpoint"
    /// A stage span ends before it starts, or lasts longer than a day.
    case spanTimes = "span_times"
    /// The root span starts outside what the store keeps or too far ahead.
    case timestamp
    /// The trace holds more spans than `--max-spans-per-trace`.
    case traceTooLarge = "trace_too_large"
    /// The trace times more stages than one event may hold.
    case tooManyStages = "too_many_stages"
    /// An endpoint, provider, model or stage name breaks the label rules.
    case invalidLabel = "invalid_label"
    /// Spans waiting for their root already fill `--max-waiting-spans` or `--max-waiting-bytes`.
    case waitingFull = "waiting_full"
    /// Spans of a stage the request's event had already counted when they came (after the root).
    case stageCounted = "stage_counted"
}
