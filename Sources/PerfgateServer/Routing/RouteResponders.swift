import HTTPTypes
import Hummingbird

/// A route's handler behind the access check its route declares, and for a route that changes
/// state, behind the cross-origin check.
struct GuardedResponder<Context: RequestContext>: HTTPResponder {
    let route: Route
    let access: AccessCheck
    let crossOrigin: CrossOriginCheck
    let handler: @Sendable (Request, Context) async throws -> Response

    func respond(to request: Request, context: Context) async throws -> Response {
        if route.access != .open, let reason = crossOrigin.hostRefusal(request.headers, authority: request.head.authority) {
            access.selfMetrics.recordRejectedRequest(.crossOrigin)
            throw APIError(.forbidden, reason)
        }
        if route.changesState, let reason = crossOrigin.refusal(request.headers, authority: request.head.authority) {
            access.selfMetrics.recordRejectedRequest(.crossOrigin)
            throw APIError(.forbidden, reason)
        }
        try access.authorize(request, for: route)
        return try await handler(request, context)
    }
}

/// Answers a method a known path does not serve: 405 with `Allow` (RFC 9110, 15.5.6), or for
/// `OPTIONS`, 204 with `Allow` (9.3.7). Runs no handler, so it needs no token.
struct MethodNotAllowedResponder<Context: RequestContext>: HTTPResponder {
    let path: String
    let allowed: [HTTPRequest.Method]

    /// The methods of RFC 9110, PATCH and QUERY: what the router is told about for every path.
    /// Any other method (WebDAV's, say) falls through to the not-found answer, which says 501.
    static var knownMethods: [HTTPRequest.Method] { [.get, .head, .post, .put, .delete, .connect, .options, .trace, .patch, HTTPRequest.Method("QUERY")!] }

    var allow: String { (allowed + [.options]).map(\.rawValue).joined(separator: ", ") }

    func respond(to request: Request, context: Context) throws -> Response {
        if request.method == .options {
            return Response(status: .noContent, headers: [.allow: allow])
        }
        throw APIError(
            .methodNotAllowed, "\(path) does not take \(request.method); it takes \(allowed.map(\.rawValue).joined(separator: ", "))",
            headers: [.allow: allow]
        )
    }
}
