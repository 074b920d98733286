import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// perfgate's HTTP API, as a client calls it: posting events and reading trends.
public struct PerfgateAPI: Sendable {
    /// The base URL, e.g. `http://127.0.0.1:9095`.
    public let baseURL: String
    /// The bearer token, when perfgate has tokens configured.
    public let token: String?
    /// How long one call may take.
    public let timeout: TimeAmount
    private let client: HTTPClient

    /// A client of the perfgate at `baseURL`; `PERFGATE_URL` and `PERFGATE_TOKEN` fill what is nil.
    public init(baseURL: String? = nil, token: String? = nil, timeout: TimeAmount = .seconds(5), client: HTTPClient = .shared) {
        let environment = ProcessInfo.processInfo.environment
        var base = baseURL ?? environment["PERFGATE_URL"] ?? "http://127.0.0.1:9095"
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.token = token ?? environment["PERFGATE_TOKEN"]
        self.timeout = timeout
        self.client = client
    }

    /// Posts events; `idempotencyKey` makes a retry of the same batch count once.
    public func post(_ events: [TimingEvent], idempotencyKey: String? = nil) async throws -> IngestAnswer {
        let body: Data
        do {
            body = try TimingEvent.body(events)
        } catch {
            throw PerfgateError.invalidEvent("\(error)")
        }
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        if let idempotencyKey { headers.append(("Idempotency-Key", idempotencyKey)) }
        let (status, answer) = try await call(.POST, "/v1/events", headers: headers, body: body)
        guard status == 200 || status == 422 else { throw PerfgateError.refused(status: status, message: Self.message(in: answer)) }
        return IngestAnswer(json: answer)
    }

    /// `GET /v1/trends` with these query parameters; the answer's JSON.
    public func trends(_ parameters: [(String, String)]) async throws -> Data {
        var components = URLComponents()
        components.queryItems = parameters.map { URLQueryItem(name: $0.0, value: $0.1) }
        let (status, answer) = try await call(.GET, "/v1/trends?" + (components.percentEncodedQuery ?? ""), headers: [], body: nil)
        guard status == 200 else { throw PerfgateError.refused(status: status, message: Self.message(in: answer)) }
        return answer
    }

    private func call(_ method: HTTPMethod, _ path: String, headers: [(String, String)], body: Data?) async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await client.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 16 << 20)
            return (Int(response.status.code), Data(bytes.readableBytesView))
        } catch {
            throw PerfgateError.unreachable("\(baseURL): \(error)")
        }
    }

    private static func message(in answer: Data) -> String {
        let object = try? JSONSerialization.jsonObject(with: answer) as? [String: Any]
        return (object?["error"] as? String) ?? String(decoding: answer.prefix(500), as: UTF8.self)
    }
}

/// perfgate's answer to a batch.
public struct IngestAnswer: Sendable, Equatable {
    /// Events applied.
    public var accepted: Int
    /// Events refused, each listed in `errors`.
    public var rejected: Int
    /// Why events were refused: their index, the field and the message.
    public var errors: [String]
    /// Notes such as a family at its series limit.
    public var warnings: [String]

    init(json: Data) {
        let object = (try? JSONSerialization.jsonObject(with: json) as? [String: Any]) ?? [:]
        accepted = object["accepted"] as? Int ?? 0
        rejected = object["rejected"] as? Int ?? 0
        errors = (object["errors"] as? [[String: Any]] ?? []).map { "event \($0["index"] ?? "?"): \($0["error"] ?? "")" }
        warnings = object["warnings"] as? [String] ?? []
    }
}

/// Why a call to perfgate did not succeed.
public enum PerfgateError: Error, CustomStringConvertible, Sendable, Equatable {
    /// perfgate could not be reached, or did not answer in time: worth retrying.
    case unreachable(String)
    /// perfgate answered with an error status and message.
    case refused(status: Int, message: String)
    /// An event could not be encoded.
    case invalidEvent(String)

    /// Whether sending the same request again may succeed.
    public var isTransient: Bool {
        switch self {
        case .unreachable: true
        case .refused(let status, _): [408, 425, 429, 500, 502, 503, 504].contains(status)
        case .invalidEvent: false
        }
    }

    public var description: String {
        switch self {
        case .unreachable(let detail): "perfgate is unreachable: \(detail)"
        case .refused(let status, let message): "perfgate answered \(status): \(message)"
        case .invalidEvent(let detail): "the event cannot be sent: \(detail)"
        }
    }
}
