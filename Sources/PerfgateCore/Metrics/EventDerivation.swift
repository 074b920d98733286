/// Turns one event into the histogram observations the seed's metric table defines.
///
/// - `backend_fetch` → `backend_ttfb_seconds{provider, model, endpoint}`
/// - `stream_processing` → `streaming_duration_seconds{provider, model, endpoint}`
/// - the sum of the frontend stages present (`frontend_processing` among them) → `frontend_processing_seconds{endpoint}`
/// - every stage → `request_stage_duration_seconds{stage, endpoint}`
package enum EventDerivation {
    /// What a stage feeds besides `request_stage_duration_seconds`.
    package enum StageRole: Sendable {
        case backendFetch, streamProcessing, frontend, other

        /// The role of the stage called `name`.
        package init(name: String) {
            switch name {
            case StageName.backendFetch: self = .backendFetch
            case StageName.streamProcessing: self = .streamProcessing
            case StageName.requestParsing, StageName.authValidation, StageName.requestPreparation, StageName.frontendProcessing: self = .frontend
            default: self = .other
            }
        }

        /// The stage feeds a family labelled by provider and model.
        package var isBackend: Bool { self == .backendFetch || self == .streamProcessing }
    }

    /// Calls `observe(metric, stage, nanoseconds)` once for each observation of an event whose
    /// stages are `count` long, read through `stage(i)`. `stage` is the stage's position for
    /// `request_stage_duration_seconds` and nil for the families labelled by the event alone.
    @inline(__always)
    package static func forEachObservation(
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

    /// The series of an observation of `metric`; `stage` is given for `request_stage_duration_seconds`.
    package static func seriesKey(_ metric: HistogramMetric, stage: String?, endpoint: String, provider: String, model: String) -> SeriesKey {
        switch metric {
        case .requestStageDuration: SeriesKey(metric, stage!, endpoint)
        case .backendTTFB, .streamingDuration: SeriesKey(metric, provider, model, endpoint)
        case .frontendProcessing: SeriesKey(metric, endpoint)
        }
    }
}
