import Hummingbird

/// Answers requests no route matches with a JSON error listing the routes perfgate serves,
/// instead of an empty 404.
struct NotFoundMiddleware<Context: RequestContext>: RouterMiddleware {
    static var routes: String {
        "POST /v1/events, GET /metrics, GET /v1/trends, GET /healthz, GET /readyz"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            // A hostile path may be long: echo enough to recognise it, not all of it.
            let path = request.uri.path.count > 200 ? request.uri.path.prefix(200) + "…" : request.uri.path
            throw APIError(.notFound, "no route for \(request.method) \(path); perfgate serves \(Self.routes)")
        }
    }
}
