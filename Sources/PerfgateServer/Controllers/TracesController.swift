import HTTPTypes
import Hummingbird
import NIOCore
import PerfgateCore

/// `POST /v1/traces`: OTLP/HTTP trace exports, protobuf or JSON. Spans become timing events, one
/// per local root span, once their root has arrived; a 2xx means the spans are committed, as
/// events or as spans waiting for their root.
struct TracesController<Context: RequestContext>: Sendable {
    let queue: WriteQueue
    let selfMetrics: SelfMetrics
    let clock: any WallClock
    let configuration: ServerConfiguration
    let bodyBudget: BodyBudget

    /// Most spans, and most traces, one commit takes from an export: a larger export is committed
    /// in turns of whole traces, so that other clients' writes run between them instead of behind
    /// all of it. Each trace may cost a row (a root kept for late spans), hence the second bound.
    static var spansPerCommit: Int { 2_048 }
    static var tracesPerCommit: Int { 512 }

    /// `spans` in groups of whole traces, each of at most `spansPerCommit` spans unless one trace
    /// alone holds more (a trace is assembled in one commit); and the traces refused here, off
    /// the writer, because the export alone holds more of their spans than a trace may.
    /// A trace weighs its spans in the export and those already waiting (`waiting`), which its
    /// assembly reads back.
    static func commitGroups(
        _ spans: [OTLPSpan], maxSpansPerTrace: Int, waiting: (Set<TraceID>) -> [TraceID: Int] = { _ in [:] }
    ) -> (groups: [[OTLPSpan]], refused: [TraceAssembly.Refused]) {
        let stored = waiting(Set(spans.lazy.map(\.traceID)))
        guard spans.count + stored.values.reduce(0, +) > min(tracesPerCommit, maxSpansPerTrace) else { return (spans.isEmpty ? [] : [spans], []) }
        var byTrace: [TraceID: [OTLPSpan]] = [:]
        var order: [TraceID] = []
        for span in spans {
            if byTrace[span.traceID] == nil { order.append(span.traceID) }
            byTrace[span.traceID, default: []].append(span)
        }
        var groups: [[OTLPSpan]] = []
        var refused: [TraceAssembly.Refused] = []
        var current: [OTLPSpan] = []
        var currentWeight = 0
        var traces = 0
        for trace in order {
            let members = byTrace[trace]!
            if members.count > maxSpansPerTrace {
                // Spans sent twice count once, as the assembly counts them.
                let distinct = Set(members.map(\.spanID)).count
                if distinct > maxSpansPerTrace {
                    refused.append(TraceAssembly.Refused(
                        trace: trace, spans: members.count, reason: .traceTooLarge,
                        message: "trace \(trace): it holds \(distinct) spans, more than the limit of \(maxSpansPerTrace) (--max-spans-per-trace)"
                    ))
                    continue
                }
            }
            let weight = members.count + (stored[trace] ?? 0)
            if !current.isEmpty, currentWeight + weight > spansPerCommit || traces == tracesPerCommit {
                groups.append(current)
                current = []
                currentWeight = 0
                traces = 0
            }
            current += members
            currentWeight += weight
            traces += 1
        }
        if !current.isEmpty { groups.append(current) }
        return (groups, refused)
    }

    /// At most this many reasons are named in a partial success' message; the rest are counted.
    static var maxListedReasons: Int { 10 }

    /// The two encodings OTLP/HTTP defines.
    enum Encoding: Sendable {
        case protobuf, json

        var contentType: String {
            switch self {
            case .protobuf: "application/x-protobuf"
            case .json: "application/json"
            }
        }
    }

    @Sendable func post(_ request: Request, context: Context) async throws -> Response {
        // Errors are answered in the request's encoding when it is one of OTLP's, JSON otherwise.
        let encoding = Self.encoding(request.headers[.contentType])
        do {
            return try await export(request, encoding: encoding)
        } catch let refusal as EventsController<Context>.Refusal {
            selfMetrics.recordRejectedRequest(refusal.reason)
            throw OTLPStatus(refusal.error, encoding: encoding ?? .json)
        } catch let error as APIError {
            // A saturated or failing store: a google.rpc.Status too, with its Retry-After.
            throw OTLPStatus(error, encoding: encoding ?? .json)
        }
    }

    private func export(_ request: Request, encoding: Encoding?) async throws -> Response {
        guard let encoding else {
            throw EventsController<Context>.Refusal(.unsupportedMediaType, APIError(
                .unsupportedMediaType,
                "Content-Type \(request.headers[.contentType] ?? "(none)") is not accepted; OTLP/HTTP sends application/x-protobuf or application/json"
            ))
        }
        let gzipped = try EventsController<Context>.isGzipped(request.headers[.contentEncoding])
        let buffer = try await EventsController<Context>.collectBody(request, limit: configuration.maxBodyBytes, advice: "export smaller batches")
        let now = clock.now()
        let decoded = try EventsController<Context>.withBytes(
            of: buffer, gzipped: gzipped, inflatedLimit: configuration.maxInflatedBodyBytes, budget: bodyBudget, advice: "export smaller batches"
        ) { try decode($0, encoding: encoding) }

        var outcome = TraceAssembly.Outcome()
        let rules = EventRules(limits: configuration.effectiveLimits, now: now)
        var committed = 0
        let (groups, refused) = Self.commitGroups(decoded.spans, maxSpansPerTrace: rules.limits.maxSpansPerTrace) { queue.waitingSpans(of: $0) }
        outcome.refused = refused
        for group in groups {
            do {
                let part = try await queue.submit(traces: TraceWrite(spans: group, rules: rules)).traces ?? TraceAssembly.Outcome()
                outcome.refused += part.refused
                outcome.counted += part.counted
                outcome.completed += part.completed
                committed += group.count
            } catch let error as WriteError {
                // Spans carry no idempotency key: events already made from them would count again.
                let resend = committed == 0
                    ? "a resend may count its spans twice"
                    : "\(committed) of its \(decoded.spans.count) spans were committed before this; a resend counts their traces again"
                throw EventsController<Context>.apiError(for: error, resend: resend)
            }
        }
        selfMetrics.recordTraces(spans: decoded.spanCount, unusable: decoded.refused.count, outcome: outcome, at: now)
        let reasons = decoded.refused.map { "\($0.place): \($0.reason)" } + outcome.refused.map(\.message)
        let body = Self.answer(rejected: decoded.refused.count + outcome.refusedSpans, reasons: reasons, encoding: encoding)
        return Response(status: .ok, headers: [.contentType: encoding.contentType, .xContentTypeOptions: "nosniff"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    private func decode(_ bytes: UnsafeBufferPointer<UInt8>, encoding: Encoding) throws -> DecodedTraces {
        let keptValueBytes = OTLPSpan.keptValueBytes(configuration.effectiveLimits)
        do {
            switch encoding {
            case .protobuf: return try TraceRequestDecoder.protobuf(bytes, maxSpans: configuration.maxSpansPerExport, keptValueBytes: keptValueBytes)
            case .json: return try TraceRequestDecoder.json(bytes, maxSpans: configuration.maxSpansPerExport, keptValueBytes: keptValueBytes)
            }
        } catch {
            if error.tooManySpans { throw EventsController<Context>.Refusal(.tooManyEvents, APIError(.contentTooLarge, error.message)) }
            throw EventsController<Context>.Refusal(.malformedBody, APIError(.badRequest, error.message))
        }
    }

    static func encoding(_ contentType: String?) -> Encoding? {
        switch contentType.map(HeaderParsing.mediaType) {
        case "application/x-protobuf", "application/protobuf": .protobuf
        case "application/json": .json
        default: nil
        }
    }

    /// `ExportTraceServiceResponse`: empty when every span was taken, else `partial_success`
    /// with the number of spans refused and why.
    static func answer(rejected: Int, reasons: [String], encoding: Encoding) -> [UInt8] {
        var message = reasons.prefix(maxListedReasons).joined(separator: "; ")
        if reasons.count > maxListedReasons { message += "; and \(reasons.count - maxListedReasons) more" }
        switch encoding {
        case .protobuf:
            guard rejected > 0 else { return [] }
            var partial: [UInt8] = []
            ProtobufWriter.varint(1, UInt64(rejected), into: &partial)
            ProtobufWriter.string(2, message, into: &partial)
            var out: [UInt8] = []
            ProtobufWriter.bytes(1, partial, into: &out)
            return out
        case .json:
            var writer = JSONWriter()
            writer.object { w in
                guard rejected > 0 else { return }
                w.key("partialSuccess")
                w.object { w in
                    // int64 is a decimal string in protobuf's JSON mapping.
                    w.member("rejectedSpans", String(rejected))
                    w.member("errorMessage", message)
                }
            }
            return writer.bytes
        }
    }
}

/// A refused export, answered as OTLP/HTTP requires: a `google.rpc.Status` in the request's
/// encoding, with the HTTP status and headers (`Retry-After`) of the refusal.
struct OTLPStatus<Context: RequestContext>: HTTPResponseError {
    let error: APIError
    let encoding: TracesController<Context>.Encoding

    init(_ error: APIError, encoding: TracesController<Context>.Encoding) {
        self.error = error
        self.encoding = encoding
    }

    var status: HTTPResponse.Status { error.status }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, else UNKNOWN.
        let code = switch error.status {
        case .badRequest, .unsupportedMediaType: 3
        case .contentTooLarge, .tooManyRequests: 8
        case .serviceUnavailable: 14
        default: 2
        }
        var body: [UInt8] = []
        switch encoding {
        case .protobuf:
            ProtobufWriter.varint(1, UInt64(code), into: &body)
            ProtobufWriter.string(2, error.message, into: &body)
        case .json:
            var writer = JSONWriter()
            writer.object { w in
                w.member("code", code)
                w.member("message", error.message)
            }
            body = writer.bytes
        }
        var response = Response(status: error.status, headers: [.contentType: encoding.contentType, .xContentTypeOptions: "nosniff"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        response.headers.append(contentsOf: error.headers)
        return response
    }
}
