import Hummingbird
import PerfgateClient

/// Tracks every request through a router or group with one line:
///
/// ```swift
/// router.add(middleware: PerformanceMiddleware())
/// ```
///
/// Each request gets a `PerformanceTracker` as `PerformanceTracker.current`, for its handler to
/// time stages in; the event is sent when the handler returns or throws, under the matched
/// route (`/users/{id}`, not `/users/42`, so paths cannot explode into series). A handler that
/// times no stage is recorded as one `handler` stage covering all of it.
public struct PerformanceMiddleware<Context: RequestContext>: RouterMiddleware {
    let sender: EventSender

    /// A middleware sending through `sender`.
    public init(sender: EventSender = .shared) {
        self.sender = sender
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // The route is known only once the router has matched it; until then a placeholder.
        let tracker = PerformanceTracker(endpoint: "", sender: sender)
        let start = ContinuousClock.now
        do {
            let response = try await PerformanceTracker.$current.withValue(tracker) { try await next(request, context) }
            record(tracker, context: context, since: start)
            return response
        } catch {
            record(tracker, context: context, since: start)
            throw error
        }
    }

    private func record(_ tracker: PerformanceTracker, context: Context, since start: ContinuousClock.Instant) {
        tracker.endpoint = context.endpointPath ?? "unmatched"
        if tracker.isEmpty { tracker.add("handler", start.duration(to: .now)) }
        tracker.recordPercentages()
    }
}
