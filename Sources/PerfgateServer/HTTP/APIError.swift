import HTTPTypes
import Hummingbird
import PerfgateCore

/// An error answered as JSON `{"error": "…"}` with its HTTP status and any extra headers.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = Response.json(body, status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    /// The JSON body: `{"error": message}`.
    var body: [UInt8] {
        var writer = JSONWriter()
        writer.object { $0.member("error", message) }
        return writer.bytes
    }

    /// 503 with `Retry-After`, for when the write path cannot take more right now.
    static func unavailable(_ message: String, retryAfterSeconds: Int = 1) -> APIError {
        APIError(.serviceUnavailable, message, headers: [.retryAfter: String(retryAfterSeconds)])
    }
}

extension Response {
    /// The `Content-Type` of every JSON answer.
    static var jsonContentType: String { "application/json; charset=utf-8" }

    /// The headers of every JSON answer: its type, and no sniffing of another (a label value
    /// that looks like HTML stays JSON text).
    static var jsonHeaders: HTTPFields { [.contentType: jsonContentType, .xContentTypeOptions: "nosniff"] }

    /// A response with a JSON body.
    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: jsonHeaders,
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}
