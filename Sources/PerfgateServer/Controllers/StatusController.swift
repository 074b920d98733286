import HTTPTypes
import Hummingbird
import PerfgateCore

/// `GET /`: the status page, rendered on the server; `?fragment=1` renders only the part the
/// page's script swaps in when it refreshes.
struct StatusController<Context: RequestContext>: Sendable {
    let components: Components

    @Sendable func page(_ request: Request, context: Context) async throws -> Response {
        let windows = StatusWindow.available(retentionMinutes: components.configuration.retentionMinutes)
        var window = windows.contains(.oneHour) ? StatusWindow.oneHour : windows[0]
        var fragment = false
        let parameters: [(name: String, value: String)]
        do {
            parameters = try QueryString.parse(request.uri.query ?? "")
        } catch {
            throw APIError(.badRequest, error.message)
        }
        var seen: Set<String> = []
        for (name, value) in parameters {
            guard seen.insert(name).inserted else { throw APIError(.badRequest, "\(name) is given more than once") }
            switch name {
            case "window":
                guard let chosen = StatusWindow(rawValue: value), windows.contains(chosen) else {
                    throw APIError(.badRequest, "window must be one of \(windows.map(\.rawValue).joined(separator: ", ")) (got '\(value)')")
                }
                window = chosen
            case "fragment":
                guard value == "0" || value == "1" else { throw APIError(.badRequest, "fragment must be 0 or 1 (got '\(value.prefix(40))')") }
                fragment = value == "1"
            default:
                throw APIError(.badRequest, "unknown parameter '\(name)'; the page takes window and fragment")
            }
        }
        let report = try await components.reads.run("the status page") {
            try await StatusReport.build(components, window: window, now: components.clock.now())
        }
        let nonce = Self.makeNonce()
        let html = fragment ? StatusPageHTML.main(report) : StatusPageHTML.page(report, nonce: nonce)
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8",
                .cacheControl: "no-store",
                // Only the page's own script runs (its nonce is new with every page): no inline
                // handler, no script a label could smuggle in, even past an escaping mistake.
                .contentSecurityPolicy:
                    "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-\(nonce)'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                .xContentTypeOptions: "nosniff",
            ],
            body: .init(byteBuffer: ByteBuffer(string: html))
        )
    }
}

extension StatusController {
    /// 128 random bits as hex: a CSP nonce no page can guess.
    static func makeNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(32)
        for _ in 0..<2 {
            var word = generator.next() as UInt64
            for _ in 0..<16 {
                text.append(digits[Int(word & 0xf)])
                word >>= 4
            }
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
}
