/// Turns spans into timing events, one per local root span: the durations of its stage spans and
/// the labels its spans carry. Spans whose local root is not among those given wait for it.
///
/// The answer depends only on the set of spans, never on their order or on how they were split
/// across requests: a trace sent span by span gives the event one request holding it would.
package enum TraceAssembly {
    /// What a set of spans came to.
    package struct Outcome: Sendable {
        /// The events of the traces completed, for the same aggregation as `/v1/events`.
        package var columns = EventColumns()
        /// Spans whose local root has not arrived.
        package var pending: [OTLPSpan] = []
        /// Events refused, with the number of spans each held and why.
        package var refused: [(trace: TraceID, spans: Int, reason: String)] = []
        /// Local roots whose spans named no stage: received, and nothing to count.
        package var withoutStages = 0

        /// Nothing assembled yet.
        package init() {}

        /// Spans of refused events.
        package var refusedSpans: Int { refused.reduce(0) { $0 + $1.spans } }
    }

    /// The stage a span times: its `perfgate.stage` attribute, else its name when that is one of
    /// the seed's five stages.
    package static func stage(of span: OTLPSpan) -> String? {
        if let named = span.attributes[.stage] { return named }
        return StageName.seed.contains(span.name) ? span.name : nil
    }

    /// Assembles `spans` under `rules`. Spans are told apart by trace and span id: a span given
    /// twice counts once.
    ///
    /// Linear in the spans whatever their shape: each span's local root is found once, and the
    /// spans walked on the way take the same answer (a chain of 30,000 parents took 55 s when
    /// each span walked up alone, on the writer every client waits for).
    package static func assemble(_ spans: [OTLPSpan], rules: EventRules) -> Outcome {
        var outcome = Outcome()
        var byTrace: [TraceID: [UInt64: OTLPSpan]] = [:]
        for span in spans { byTrace[span.traceID, default: [:]][span.spanID] = span }
        for trace in byTrace.keys.sorted() {
            let members = byTrace[trace]!
            guard members.count <= rules.limits.maxSpansPerTrace else {
                outcome.refused.append((trace, members.count, "trace \(trace): it holds \(members.count) spans, more than the limit of \(rules.limits.maxSpansPerTrace) (--max-spans-per-trace)"))
                continue
            }
            var groups: [UInt64: [OTLPSpan]] = [:]
            var roots = LocalRoots(members)
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
                append(ordered, of: trace, rules: rules, to: &outcome)
            }
        }
        return outcome
    }

    /// The local root each span of one trace descends from, found once per span.
    private struct LocalRoots {
        let members: [UInt64: OTLPSpan]
        /// Each span resolved so far: its root's id, or nil while an ancestor is missing (or the
        /// parents form a loop, which no tracer writes).
        private var known: [UInt64: UInt64?] = [:]

        init(_ members: [UInt64: OTLPSpan]) {
            self.members = members
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
                guard onPath.insert(current.spanID).inserted, let parent = members[current.parentSpanID] else {
                    answer = nil  // a missing ancestor, or a loop
                    path.append(current.spanID)
                    break
                }
                path.append(current.spanID)
                current = parent
            }
            for id in path { known[id] = .some(answer) }
            return answer
        }
    }

    private static func append(_ spans: [OTLPSpan], of trace: TraceID, rules: EventRules, to outcome: inout Outcome) {
        let root = spans[0]
        func refuse(_ reason: String) {
            outcome.refused.append((trace, spans.count, "trace \(trace): \(reason)"))
        }
        func first(_ keys: [OTLPSpan.Key]) -> String? {
            for key in keys {
                for span in spans { if let value = span.attributes[key] { return value } }
            }
            return nil
        }

        // Stage durations, summed per stage when a trace times one stage more than once.
        var stages: [(name: String, nanoseconds: Int64)] = []
        var stageIndex: [String: Int] = [:]
        for span in spans {
            guard let name = stage(of: span) else { continue }
            guard span.endNanoseconds >= span.startNanoseconds else {
                return refuse("span \(Hex.fixed(span.spanID)) (\(name)) ends before it starts")
            }
            let duration = span.endNanoseconds - span.startNanoseconds
            guard duration <= UInt64(rules.limits.maxDurationNanoseconds) else {
                return refuse("span \(Hex.fixed(span.spanID)) (\(name)) lasts \(DecimalSeconds.format(nanoseconds: Int64(clamping: duration))) s, longer than \(DecimalSeconds.format(nanoseconds: rules.limits.maxDurationNanoseconds)) s")
            }
            if let index = stageIndex[name] {
                stages[index].nanoseconds = min(stages[index].nanoseconds + Int64(duration), rules.limits.maxDurationNanoseconds)
            } else {
                stageIndex[name] = stages.count
                stages.append((name, Int64(duration)))
            }
        }
        guard !stages.isEmpty else {
            outcome.withoutStages += 1
            return
        }
        guard stages.count <= rules.limits.maxStagesPerEvent else {
            return refuse("it times \(stages.count) stages, more than the limit of \(rules.limits.maxStagesPerEvent) per request")
        }
        guard let endpoint = root.attributes[.httpRoute] ?? first([.endpoint]) else {
            return refuse("no endpoint: set http.route on the root span or perfgate.endpoint on any span of the trace")
        }
        let timestamp = Timestamp(nanoseconds: Int64(clamping: root.startNanoseconds))
        if let problem = rules.checkTimestamp(timestamp) { return refuse("the root span's start \(problem)") }

        let firstStage = outcome.columns.stages.count
        do throws(Refusal) {
            let endpointNumber = try label(endpoint, "endpoint", rules, &outcome.columns)
            let provider = try first([.providerName, .system, .provider]).map { value throws(Refusal) in try label(value, "provider", rules, &outcome.columns) }
            let model = try first([.requestModel, .model]).map { value throws(Refusal) in try label(value, "model", rules, &outcome.columns) }
            for (name, nanoseconds) in stages {
                let number = outcome.columns.stageNames.intern(name, rule: rules.checkStageName)
                if let problem = outcome.columns.stageNames.problems[Int(number)] { throw Refusal(problem) }
                outcome.columns.stages.append(EventColumns.StageValue(name: number, nanoseconds: nanoseconds))
            }
            let unknown = provider == nil || model == nil ? outcome.columns.unknown(rule: rules.checkLabelValue) : -1
            outcome.columns.events.append(EventColumns.Event(
                endpoint: endpointNumber, provider: provider ?? unknown, model: model ?? unknown, timestamp: timestamp,
                stages: firstStage..<outcome.columns.stages.count
            ))
        } catch {
            // Interned values stay in the tables unused, as with a refused event of a JSON body.
            outcome.columns.stages.removeSubrange(firstStage...)
            refuse(error.message)
        }
    }

    private static func label(_ value: String, _ what: String, _ rules: EventRules, _ columns: inout EventColumns) throws(Refusal) -> Int32 {
        let number = columns.labels.intern(value, rule: rules.checkLabelValue)
        if let problem = columns.labels.problems[Int(number)] { throw Refusal("\(what) \(EventRules.quoted(value)) \(problem)") }
        return number
    }

    private struct Refusal: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }
}
