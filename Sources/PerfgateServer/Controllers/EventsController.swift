import HTTPTypes
import Hummingbird
import NIOCore
import PerfgateCore

/// `POST /v1/events`: reads a batch, applies its valid events, answers once they are durable.
struct EventsController<Context: RequestContext>: Sendable {
    let queue: WriteQueue
    let selfMetrics: SelfMetrics
    let clock: any WallClock
    let configuration: ServerConfiguration

    /// At most this many error entries are listed in one response; the rest are counted.
    static var maxListedErrors: Int { 1000 }

    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.post("events", use: post)
        return routes
    }

    @Sendable func post(_ request: Request, context: Context) async throws -> Response {
        do {
            return try await ingest(request)
        } catch let refusal as Refusal {
            selfMetrics.recordRejectedRequest(refusal.reason)
            throw refusal.error
        }
    }

    private func ingest(_ request: Request) async throws -> Response {
        let format = try Self.bodyFormat(request.headers[.contentType])
        let gzipped = try Self.isGzipped(request.headers[.contentEncoding])
        if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodyBytes {
            throw bodyTooLarge()
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw bodyTooLarge()
        }

        let now = clock.now()
        let decoder = BatchDecoder(rules: EventRules(limits: configuration.effectiveLimits, now: now))
        let batch = try buffer.withUnsafeReadableBytes { raw in
            if gzipped {
                let inflated = try inflate(raw)
                return try inflated.withUnsafeBufferPointer { try decode($0, format: format, decoder: decoder) }
            }
            return try decode(raw.assumingMemoryBound(to: UInt8.self), format: format, decoder: decoder)
        }

        var delta = RollupDelta()
        delta.add(batch.columns, layouts: configuration.layouts)
        var receipt = CommitReceipt()
        if !delta.isEmpty {
            do {
                receipt = try await queue.submit(delta)
            } catch let error as WriteError {
                throw Self.apiError(for: error)
            }
        }
        selfMetrics.recordBatch(accepted: batch.acceptedCount, rejections: batch.rejections)
        let status: HTTPResponse.Status = batch.acceptedCount == 0 && batch.rejectedCount > 0 ? .unprocessableContent : .ok
        return Response.json(Self.answer(batch, receipt: receipt, limit: configuration.maxSeriesPerMetric), status: status)
    }

    private func decode(_ bytes: UnsafeBufferPointer<UInt8>, format: BodyFormat, decoder: BatchDecoder) throws -> DecodedBatch {
        do {
            return try decoder.decode(bytes, format: format)
        } catch {
            switch error.kind {
            case .malformed: throw Refusal(.malformedBody, APIError(.badRequest, error.message))
            case .tooManyEvents: throw Refusal(.tooManyEvents, APIError(.contentTooLarge, error.message))
            }
        }
    }

    private func inflate(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
        do {
            return try Gzip.inflate(raw, limit: configuration.maxInflatedBodyBytes)
        } catch .tooLarge(let limit) {
            throw Refusal(.bodyTooLarge, APIError(.contentTooLarge, "the body inflates to more than \(limit) bytes; send smaller batches"))
        } catch .invalid(let reason) {
            throw Refusal(.malformedBody, APIError(.badRequest, "Content-Encoding is gzip but \(reason)"))
        }
    }

    private func bodyTooLarge() -> Refusal {
        Refusal(.bodyTooLarge, APIError(.contentTooLarge, "the body is larger than \(configuration.maxBodyBytes) bytes; send smaller batches or gzip them"))
    }

    // MARK: Headers

    static func bodyFormat(_ contentType: String?) throws -> BodyFormat {
        guard let contentType else { return .json }
        switch HeaderParsing.mediaType(contentType) {
        case "application/json", "": return .json
        case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
            return .ndjson
        case let other:
            throw Refusal(.unsupportedMediaType, APIError(
                .unsupportedMediaType,
                "Content-Type \(other) is not accepted; send application/json (an event, an array or {\"events\": [...]}) or application/x-ndjson (one event per line)"
            ))
        }
    }

    static func isGzipped(_ contentEncoding: String?) throws -> Bool {
        guard let contentEncoding else { return false }
        switch contentEncoding.trimmingCharacters(in: " \t").lowercased() {
        case "", "identity": return false
        case "gzip", "x-gzip": return true
        case let other:
            throw Refusal(.unsupportedMediaType, APIError(.unsupportedMediaType, "Content-Encoding \(other) is not accepted; use gzip or none"))
        }
    }

    // MARK: Answer

    static func answer(_ batch: DecodedBatch, receipt: CommitReceipt, limit: Int) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.member("accepted", batch.acceptedCount)
            w.member("rejected", batch.rejectedCount)
            w.key("errors")
            w.array { w in
                for rejection in batch.rejections.prefix(maxListedErrors) {
                    w.object { w in
                        w.member("index", rejection.index)
                        w.member("field", rejection.field)
                        w.member("error", rejection.message)
                    }
                }
            }
            if batch.rejections.count > maxListedErrors {
                w.member("errors_omitted", batch.rejections.count - maxListedErrors)
            }
            if !receipt.overflowed.isEmpty {
                w.key("warnings")
                w.array { w in
                    for (metric, count) in receipt.overflowed.sorted(by: { $0.key < $1.key }) {
                        w.string(
                            "\(metric.name) holds its limit of \(limit) series; \(count) observations were counted under the \(SeriesKey.overflowValue) series"
                        )
                    }
                }
            }
        }
        return writer.bytes
    }

    static func apiError(for error: WriteError) -> Refusal {
        switch error {
        case .overloaded(let queued, let capacity):
            Refusal(.overloaded, .unavailable("perfgate is saturated (\(queued) events queued, limit \(capacity)); nothing was applied, retry shortly"))
        case .shuttingDown:
            Refusal(.overloaded, .unavailable("perfgate is shutting down; nothing was applied, retry against another instance or after the restart"))
        case .storeFailed(let message):
            Refusal(.storeError, .unavailable("the store could not commit the batch (\(message)); nothing was applied, retry later", retryAfterSeconds: 5))
        }
    }

    /// A request refused as a whole: the answer to send and the reason to count.
    struct Refusal: Error {
        let reason: RequestRejection
        let error: APIError

        init(_ reason: RequestRejection, _ error: APIError) {
            self.reason = reason
            self.error = error
        }
    }
}
