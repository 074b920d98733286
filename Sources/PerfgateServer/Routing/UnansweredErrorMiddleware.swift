import HTTPTypes
import Hummingbird
import Logging

/// Answers an error no handler turned into an answer (a store that cannot be read: PostgreSQL
/// down, a disk error) with 503, a JSON reason and `Retry-After`, instead of an empty 500.
///
/// The reason names nothing of the deployment (paths, hosts and users are in the store's
/// messages); the error itself goes to the log.
struct UnansweredErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            context.logger.error("a request failed", metadata: ["http.path": "\(request.uri.path.prefix(200))", "error": "\(error)"])
            throw APIError.unavailable("perfgate could not answer: its store could not be read (the reason is in its log); retry shortly", retryAfterSeconds: 5)
        }
    }
}
