import Hummingbird
import PerfgateCore

/// `GET /healthz` (the process answers) and `GET /readyz` (it can take writes now).
struct HealthController<Context: RequestContext>: Sendable {
    let queue: WriteQueue
    let access: AccessCheck

    @Sendable func alive(_ request: Request, context: Context) async throws -> Response {
        var writer = JSONWriter()
        writer.object { $0.member("status", "ok") }
        return Response.json(writer.bytes)
    }

    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        var writer = JSONWriter()
        let unready = queue.unreadyReason()
        writer.object { w in
            w.member("ready", unready == nil)
            guard let unready else { return }
            // The route is open: the store's own words (file paths, the database's host, user and
            // name) are for those who may read, and the log.
            if access.grants(.read, to: request.headers) {
                w.member("reason", unready.detail)
            } else {
                w.member("reason", unready.summary)
                w.member("details", access.tokens.isOpen ? "in perfgate's log" : "in perfgate's log, or here with a read token")
            }
        }
        return Response.json(writer.bytes, status: unready == nil ? .ok : .serviceUnavailable)
    }
}
