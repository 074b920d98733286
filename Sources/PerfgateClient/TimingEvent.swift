import Foundation

/// One request's stage timings, as `POST /v1/events` takes them.
public struct TimingEvent: Sendable, Equatable {
    /// The route the request served, e.g. `/v1/chat/completions`.
    public var endpoint: String
    /// The backend provider, when the request called one.
    public var provider: String?
    /// The backend model, when the request called one.
    public var model: String?
    /// Seconds per stage, in the order they were first timed.
    public var stages: [(name: String, seconds: Double)]
    /// When the request started.
    public var timestamp: Date

    /// An event.
    public init(endpoint: String, provider: String? = nil, model: String? = nil, stages: [(name: String, seconds: Double)], timestamp: Date = Date()) {
        self.endpoint = endpoint
        self.provider = provider
        self.model = model
        self.stages = stages
        self.timestamp = timestamp
    }

    public static func == (lhs: TimingEvent, rhs: TimingEvent) -> Bool {
        lhs.endpoint == rhs.endpoint && lhs.provider == rhs.provider && lhs.model == rhs.model && lhs.timestamp == rhs.timestamp
            && lhs.stages.map(\.name) == rhs.stages.map(\.name) && lhs.stages.map(\.seconds) == rhs.stages.map(\.seconds)
    }

    /// The event as a JSON object.
    var jsonObject: [String: Any] {
        var object: [String: Any] = [
            "endpoint": endpoint,
            "stages": Dictionary(stages.map { ($0.name, $0.seconds) }, uniquingKeysWith: +),
            // Milliseconds are plenty for minute windows, and keep the body short.
            "timestamp": (timestamp.timeIntervalSince1970 * 1000).rounded() / 1000,
        ]
        if let provider { object["provider"] = provider }
        if let model { object["model"] = model }
        return object
    }

    /// Events as the JSON array body of `POST /v1/events`.
    static func body(_ events: [TimingEvent]) throws -> Data {
        try JSONSerialization.data(withJSONObject: events.map(\.jsonObject), options: [.withoutEscapingSlashes])
    }
}
