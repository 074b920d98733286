import Hummingbird
import PerfgateClient

/// Tracks every request through a router or group with one line:
///
/// ```swift
/// router.add(middleware: PerformanceMiddleware())
/// ```
///
/// Each request gets a `PerformanceTracker` as `PerformanceTracker.current`, for its handler and
/// its response body to time stages in. The event is sent once the response body has been
/// written (or the handler threw), under the matched route (`/users/{id}`, not `/users/42`, so
/// paths cannot explode into series). A handler that times no stage is recorded as one
/// `handler` stage covering it; a streamed body (one whose length is not known before it is
/// written) whose writing times no `stream_processing` has its writing time recorded as that stage.
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
        var response: Response
        do {
            response = try await PerformanceTracker.$current.withValue(tracker) { try await next(request, context) }
        } catch {
            handlerEnded(tracker, context: context, start: start)
            tracker.recordPercentages()
            throw error
        }
        handlerEnded(tracker, context: context, start: start)
        // Hummingbird writes the body after this returns: a streamed body runs its own code
        // then, so the event waits for it, and the body sees the same tracker.
        let body = response.body
        let streamed = body.contentLength == nil
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            let writeStart = ContinuousClock.now
            defer {
                if streamed, !tracker.hasStage("stream_processing") {
                    tracker.add("stream_processing", writeStart.duration(to: .now))
                }
                tracker.recordPercentages()
            }
            try await PerformanceTracker.$current.withValue(tracker) { try await body.write(writer) }
        }
        return response
    }

    /// Names the route the handler served, and times the handler as one stage if it timed none.
    private func handlerEnded(_ tracker: PerformanceTracker, context: Context, start: ContinuousClock.Instant) {
        tracker.endpoint = context.endpointPath ?? "unmatched"
        if tracker.isEmpty { tracker.add("handler", start.duration(to: .now)) }
    }
}
