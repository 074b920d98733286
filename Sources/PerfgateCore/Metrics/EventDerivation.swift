/// Turns one event into the histogram observations the seed's metric table defines.
///
/// - `backend_fetch` → `backend_ttfb_seconds{provider, model, endpoint}`
/// - `stream_processing` → `streaming_duration_seconds{provider, model, endpoint}`
/// - the sum of the frontend stages present → `frontend_processing_seconds{endpoint}`
/// - every stage → `request_stage_duration_seconds{stage, endpoint}`
public enum EventDerivation {
    /// Calls `observe` once for each observation the event yields.
    public static func forEachObservation(
        of event: TimingEvent,
        _ observe: (SeriesKey, Int64) -> Void
    ) {
        var frontend: Int64 = 0
        var hasFrontend = false
        for stage in event.stages {
            observe(SeriesKey(.requestStageDuration, [stage.name, event.endpoint]), stage.nanoseconds)
            switch stage.name {
            case StageName.backendFetch:
                observe(SeriesKey(.backendTTFB, [event.provider, event.model, event.endpoint]), stage.nanoseconds)
            case StageName.streamProcessing:
                observe(SeriesKey(.streamingDuration, [event.provider, event.model, event.endpoint]), stage.nanoseconds)
            case StageName.requestParsing, StageName.authValidation, StageName.requestPreparation:
                frontend += stage.nanoseconds
                hasFrontend = true
            default:
                break
            }
        }
        if hasFrontend {
            observe(SeriesKey(.frontendProcessing, [event.endpoint]), frontend)
        }
    }
}
