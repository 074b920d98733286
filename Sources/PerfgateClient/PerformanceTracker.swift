import Foundation
import Synchronization

/// Times the stages of one request and sends them to perfgate as one event.
///
/// ```swift
/// let tracker = PerformanceTracker(endpoint: "/v1/chat/completions")
/// let user = try await tracker.stage("auth_validation") { try await validate(apiKey) }
/// let response = try await tracker.backendRequest(provider: "openrouter", model: model) { try await fetch() }
/// try await tracker.streaming { for try await chunk in response { try await writer.write(chunk) } }
/// tracker.recordPercentages()
/// ```
///
/// `recordPercentages()` sends the event once (perfgate derives the percentages); a tracker
/// released without it is sent then. Sending goes through an `EventSender` and never throws.
public final class PerformanceTracker: Sendable {
    /// The tracker of the request being handled, set by `PerformanceMiddleware`.
    @TaskLocal public static var current: PerformanceTracker?

    private struct State {
        var endpoint: String
        var provider: String?
        var model: String?
        var stages: [(name: String, nanoseconds: Int64)] = []
        var sent = false
    }

    private let started = Date()
    private let sender: EventSender
    private let state: Mutex<State>

    /// A tracker for one request to `endpoint`.
    public init(endpoint: String, sender: EventSender = .shared) {
        self.sender = sender
        state = Mutex(State(endpoint: endpoint))
    }

    /// The route the request served; settable until the event is sent (a middleware learns the
    /// matched route only after the handler ran).
    public var endpoint: String {
        get { state.withLock { $0.endpoint } }
        set { state.withLock { $0.endpoint = newValue } }
    }

    deinit {
        send()
    }

    /// Times `body` as the stage `name` (request_parsing, auth_validation, request_preparation or your own).
    public func stage<T>(
        _ name: String, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async rethrows -> T {
        let start = ContinuousClock.now
        defer { add(name, start.duration(to: .now)) }
        return try await body()
    }

    /// Times `body` as the backend call up to its first byte (`backend_fetch`), and labels the event.
    public func backendRequest<T>(
        provider: String, model: String, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async rethrows -> T {
        state.withLock {
            $0.provider = provider
            $0.model = model
        }
        return try await stage("backend_fetch", body)
    }

    /// Times `body` as streaming the response to the client (`stream_processing`).
    public func streaming<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        try await stage("stream_processing", body)
    }

    /// Adds a stage measured elsewhere; a stage added twice adds up.
    public func add(_ name: String, _ duration: Duration) {
        let components = duration.components
        let nanoseconds = components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
        state.withLock { state in
            if let index = state.stages.firstIndex(where: { $0.name == name }) {
                state.stages[index].nanoseconds += nanoseconds
            } else {
                state.stages.append((name, nanoseconds))
            }
        }
    }

    /// Whether no stage has been timed yet.
    public var isEmpty: Bool { state.withLock { $0.stages.isEmpty } }

    /// Whether the stage `name` has been timed.
    public func hasStage(_ name: String) -> Bool { state.withLock { $0.stages.contains { $0.name == name } } }

    /// Sends the event, once; later calls do nothing.
    public func recordPercentages() {
        send()
    }

    private func send() {
        let event = state.withLock { state -> TimingEvent? in
            guard !state.sent, !state.stages.isEmpty else { return nil }
            state.sent = true
            return TimingEvent(
                endpoint: state.endpoint, provider: state.provider, model: state.model,
                stages: state.stages.map { ($0.name, Double($0.nanoseconds) / 1e9) }, timestamp: started
            )
        }
        if let event { sender.submit(event) }
    }
}
