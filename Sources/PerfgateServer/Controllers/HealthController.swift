import Hummingbird
import PerfgateCore

/// `GET /healthz` (the process answers) and `GET /readyz` (it can take writes now).
struct HealthController<Context: RequestContext>: Sendable {
    let queue: WriteQueue
    let access: AccessCheck
    let corruptRows: CorruptRows

    @Sendable func alive(_ request: Request, context: Context) async throws -> Response {
        var writer = JSONWriter()
        writer.object { $0.member("status", "ok") }
        return Response.json(writer.bytes)
    }

    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        var writer = JSONWriter()
        let unready = queue.unreadyReason()
        let damaged = corruptRows.count
        writer.object { w in
            w.member("ready", unready == nil)
            // Damaged rows do not stop writes: they are skipped, and said here.
            if damaged > 0 {
                w.member("corrupt_rows", damaged)
                if access.grants(.read, to: request.headers) { w.key("corrupt_row_examples"); w.array { w in for row in corruptRows.examples { w.string(row) } } }
            }
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
