/// One request's stage timings, as posted by an application.
public struct TimingEvent: Equatable, Sendable {
    /// The route that served the request, e.g. `/v1/chat/completions`.
    public var endpoint: String
    /// The backend provider, `unknown` when not given.
    public var provider: String
    /// The model, `unknown` when not given.
    public var model: String
    /// The measured stages, in the order they were posted; names are unique.
    public var stages: [Stage]
    /// When the request happened; the receipt time when the client did not say.
    public var timestamp: Timestamp

    /// An event from its parts.
    public init(endpoint: String, provider: String = "unknown", model: String = "unknown", stages: [Stage], timestamp: Timestamp) {
        self.endpoint = endpoint
        self.provider = provider
        self.model = model
        self.stages = stages
        self.timestamp = timestamp
    }
}

/// One measured stage of a request.
public struct Stage: Equatable, Sendable {
    /// The stage name: one of `StageName`'s, or a custom `[a-z][a-z0-9_]*` name.
    public var name: String
    /// How long it took, in nanoseconds.
    public var nanoseconds: Int64

    /// A stage from its name and duration in nanoseconds.
    public init(name: String, nanoseconds: Int64) {
        self.name = name
        self.nanoseconds = nanoseconds
    }
}

/// The stage names the seed defines, and the groups `stage_percentage` reports.
public enum StageName {
    public static let requestParsing = "request_parsing"
    public static let authValidation = "auth_validation"
    public static let requestPreparation = "request_preparation"
    public static let backendFetch = "backend_fetch"
    public static let streamProcessing = "stream_processing"

    /// The stages whose sum is `frontend_processing_seconds`.
    public static let frontend: Set<String> = [requestParsing, authValidation, requestPreparation]
}
