import Hummingbird
import PerfgateCore

/// `GET /healthz` (the process answers) and `GET /readyz` (it can take writes now).
struct HealthController<Context: RequestContext>: Sendable {
    let queue: WriteQueue

    @Sendable func alive(_ request: Request, context: Context) async throws -> Response {
        var writer = JSONWriter()
        writer.object { $0.member("status", "ok") }
        return Response.json(writer.bytes)
    }

    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        var writer = JSONWriter()
        let reason = queue.unreadyReason()
        writer.object { w in
            w.member("ready", reason == nil)
            if let reason { w.member("reason", reason) }
        }
        return Response.json(writer.bytes, status: reason == nil ? .ok : .serviceUnavailable)
    }
}
