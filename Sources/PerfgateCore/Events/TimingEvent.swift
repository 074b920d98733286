/// One request's stage timings, as posted by an application.
package struct TimingEvent: Equatable, Sendable {
    /// The route that served the request, e.g. `/v1/chat/completions`.
    package var endpoint: String
    /// The backend provider, `unknown` when not given.
    package var provider: String
    /// The model, `unknown` when not given.
    package var model: String
    /// The measured stages, in the order they were posted; names are unique.
    package var stages: [Stage]
    /// When the request happened; the receipt time when the client did not say.
    package var timestamp: Timestamp

    /// An event from its parts.
    package init(endpoint: String, provider: String = "unknown", model: String = "unknown", stages: [Stage], timestamp: Timestamp) {
        self.endpoint = endpoint
        self.provider = provider
        self.model = model
        self.stages = stages
        self.timestamp = timestamp
    }
}

/// One measured stage of a request.
package struct Stage: Equatable, Sendable {
    /// The stage name: one of `StageName`'s, or a custom `[a-z][a-z0-9_]*` name.
    package var name: String
    /// How long it took, in nanoseconds.
    package var nanoseconds: Int64

    /// A stage from its name and duration in nanoseconds.
    package init(name: String, nanoseconds: Int64) {
        self.name = name
        self.nanoseconds = nanoseconds
    }
}

/// The stage names the seed defines, and the groups `stage_percentage` reports.
package enum StageName {
    package static let requestParsing = "request_parsing"
    package static let authValidation = "auth_validation"
    package static let requestPreparation = "request_preparation"
    package static let backendFetch = "backend_fetch"
    package static let streamProcessing = "stream_processing"
    /// The three frontend stages timed as one: what an uninstrumented frontend gives, from the
    /// request's start to the backend call's.
    package static let frontendProcessing = "frontend_processing"

    /// The stages whose sum is `frontend_processing_seconds`.
    package static let frontend: Set<String> = [requestParsing, authValidation, requestPreparation]

    /// The seed's five stages.
    package static let seed: Set<String> = frontend.union([backendFetch, streamProcessing])
}
