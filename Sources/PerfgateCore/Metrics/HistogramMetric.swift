/// The four histogram families of the seed, with their label names and default buckets.
package enum HistogramMetric: Int, CaseIterable, Hashable, Sendable, Comparable {
    case backendTTFB
    case streamingDuration
    case frontendProcessing
    case requestStageDuration

    /// The family name, exactly as the seed has it.
    package var name: String {
        switch self {
        case .backendTTFB: "backend_ttfb_seconds"
        case .streamingDuration: "streaming_duration_seconds"
        case .frontendProcessing: "frontend_processing_seconds"
        case .requestStageDuration: "request_stage_duration_seconds"
        }
    }

    /// The family with this name, if there is one.
    package init?(name: String) {
        guard let metric = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = metric
    }

    /// The label names, in exposition order.
    package var labelNames: [String] {
        switch self {
        case .backendTTFB, .streamingDuration: ["provider", "model", "endpoint"]
        case .frontendProcessing: ["endpoint"]
        case .requestStageDuration: ["stage", "endpoint"]
        }
    }

    /// How many labels the family has (`labelNames.count`, without making the array).
    package var labelCount: Int {
        switch self {
        case .backendTTFB, .streamingDuration: 3
        case .frontendProcessing: 1
        case .requestStageDuration: 2
        }
    }

    /// The position of the `endpoint` label.
    package var endpointLabelIndex: Int { labelCount - 1 }

    /// The `# HELP` text.
    package var help: String {
        switch self {
        case .backendTTFB: "Backend API time to first byte, in seconds (the backend_fetch stage)."
        case .streamingDuration: "Time spent streaming the response to the client, in seconds (the stream_processing stage)."
        case .frontendProcessing: "Request parsing, auth validation and request preparation together, in seconds."
        case .requestStageDuration: "Duration of each request stage, in seconds."
        }
    }

    /// The seed's bucket upper bounds, in seconds.
    package var defaultBoundsText: [String] {
        switch self {
        case .backendTTFB, .streamingDuration:
            ["0.1", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10"]
        case .frontendProcessing:
            ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"]
        case .requestStageDuration:
            // Every bound of the two seed layouts, so each stage is resolved at least as finely
            // as the family it feeds: sub-millisecond frontend stages and multi-second backend ones.
            ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10"]
        }
    }

    package static func < (lhs: HistogramMetric, rhs: HistogramMetric) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}
