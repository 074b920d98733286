import HTTPTypes
import Hummingbird

/// Answers requests no route matches with a JSON error that lists the routes perfgate serves,
/// instead of an empty 404; a method perfgate implements nowhere gets 501 (RFC 9110, 15.6.2).
struct NotFoundMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            guard MethodNotAllowedResponder<Context>.knownMethods.contains(request.method) else {
                throw APIError(.notImplemented, "perfgate does not implement the \(request.method.rawValue.prefix(40)) method; it serves \(Route.listing)")
            }
            // A hostile path may be long: echo enough to recognise it, not all of it.
            let path = request.uri.path.count > 200 ? request.uri.path.prefix(200) + "…" : request.uri.path
            throw APIError(.notFound, "no route for \(request.method) \(path); perfgate serves \(Route.listing)")
        }
    }
}
