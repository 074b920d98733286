/// Turns one event into the histogram observations the seed's metric table defines.
///
/// - `backend_fetch` → `backend_ttfb_seconds{provider, model, endpoint}`
/// - `stream_processing` → `streaming_duration_seconds{provider, model, endpoint}`
/// - the sum of the frontend stages present → `frontend_processing_seconds{endpoint}`
/// - every stage → `request_stage_duration_seconds{stage, endpoint}`
public enum EventDerivation {
    /// What a stage feeds besides `request_stage_duration_seconds`.
    public enum StageRole: Sendable {
        case backendFetch, streamProcessing, frontend, other

        /// The role of the stage called `name`.
        public init(name: String) {
            switch name {
            case StageName.backendFetch: self = .backendFetch
            case StageName.streamProcessing: self = .streamProcessing
            case StageName.requestParsing, StageName.authValidation, StageName.requestPreparation: self = .frontend
            default: self = .other
            }
        }
    }

    /// Calls `observe(metric, stage, nanoseconds)` once for each observation of an event whose
    /// stages are `count` long, read through `stage(i)`. `stage` is the stage's position for
    /// `request_stage_duration_seconds` and nil for the families labelled by the event alone.
    @inline(__always)
    public static func forEachObservation(
        stageCount count: Int,
        stage: (Int) -> (role: StageRole, nanoseconds: Int64),
        _ observe: (HistogramMetric, Int?, Int64) -> Void
    ) {
        var frontend: Int64 = 0
        var hasFrontend = false
        for position in 0..<count {
            let (role, nanoseconds) = stage(position)
            observe(.requestStageDuration, position, nanoseconds)
            switch role {
            case .backendFetch: observe(.backendTTFB, nil, nanoseconds)
            case .streamProcessing: observe(.streamingDuration, nil, nanoseconds)
            case .frontend:
                frontend += nanoseconds
                hasFrontend = true
            case .other: break
            }
        }
        if hasFrontend {
            observe(.frontendProcessing, nil, frontend)
        }
    }

    /// Calls `observe` once for each observation the event yields, with its series.
    public static func forEachObservation(
        of event: TimingEvent,
        _ observe: (SeriesKey, Int64) -> Void
    ) {
        forEachObservation(stageCount: event.stages.count, stage: { (StageRole(name: event.stages[$0].name), event.stages[$0].nanoseconds) }) {
            metric, stage, nanoseconds in
            observe(seriesKey(metric, stage: stage.map { event.stages[$0].name }, endpoint: event.endpoint, provider: event.provider, model: event.model), nanoseconds)
        }
    }

    /// The series of an observation of `metric`; `stage` is given for `request_stage_duration_seconds`.
    public static func seriesKey(_ metric: HistogramMetric, stage: String?, endpoint: String, provider: String, model: String) -> SeriesKey {
        switch metric {
        case .requestStageDuration: SeriesKey(metric, [stage!, endpoint])
        case .backendTTFB, .streamingDuration: SeriesKey(metric, [provider, model, endpoint])
        case .frontendProcessing: SeriesKey(metric, [endpoint])
        }
    }
}
