import HTTPTypes
import Hummingbird
import NIOCore
import PerfgateCore

extension HTTPField.Name {
    /// The client's name for one batch, the same on every retry of it.
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    /// Set on an answer given earlier to the same `Idempotency-Key`.
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}

/// `POST /v1/events`: reads a batch, applies its valid events, answers once they are durable.
struct EventsController<Context: RequestContext>: Sendable {
    let queue: WriteQueue
    let store: any RollupStore
    let selfMetrics: SelfMetrics
    let clock: any WallClock
    let configuration: ServerConfiguration
    let bodyBudget: BodyBudget

    /// At most this many error entries are listed in one response; the rest are counted.
    static var maxListedErrors: Int { 1000 }

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
        let key = try Self.idempotencyKey(request.headers[values: .idempotencyKey])
        let buffer = try await Self.collectBody(request, limit: configuration.maxBodyBytes, advice: "send smaller batches")

        let now = clock.now()
        // A retry is answered before its body is decoded again: the answer must not change with
        // the clock (events that have since grown too old) or with anything else.
        let earlier: IdempotentAnswer? = if let key { try await keptAnswer(forKey: key, at: now) } else { nil }
        let decoder = Self.decoder(configuration, at: now)
        var fingerprint: UInt64 = 0
        let body = try Self.withBytes(
            of: buffer, gzipped: gzipped, inflatedLimit: configuration.maxInflatedBodyBytes, budget: bodyBudget, advice: "send smaller batches"
        ) {
            try readBody($0, key: key, earlier: earlier, fingerprint: &fingerprint, format: format, decoder: decoder)
        }
        let batch: DecodedBatch
        switch body {
        case .answered(let earlier): return try replay(earlier, fingerprint: fingerprint)
        case .decoded(let decoded): batch = decoded
        }

        let delta = Self.delta(of: batch, layouts: configuration.layouts)
        var receipt = CommitReceipt()
        if !delta.isEmpty {
            let limit = configuration.maxSeriesPerMetric
            let claim = key.map { key in
                IdempotencyClaim(key: key, bodyFingerprint: fingerprint) { receipt in
                    Self.answer(batch, receipt: receipt, limit: limit, maxBytes: IdempotentAnswer.maxStoredBytes)
                }
            }
            do {
                receipt = try await queue.submit(delta, claim: claim)
            } catch let error as WriteError {
                throw Self.apiError(for: error)
            }
            // A concurrent retry with the same key committed first: its answer stands, this applied nothing.
            if let earlier = receipt.replayed { return try replay(earlier, fingerprint: fingerprint) }
        }
        selfMetrics.recordBatch(accepted: batch.acceptedCount, rejections: batch.rejections, at: now)
        return Response.json(Self.answer(batch, receipt: receipt, limit: configuration.maxSeriesPerMetric), status: Self.status(of: batch))
    }

    // MARK: Shared with the event-loop path (EventIngestHandler)

    /// The decoder for bodies received at `now`.
    static func decoder(_ configuration: ServerConfiguration, at now: Timestamp) -> BatchDecoder {
        BatchDecoder(rules: EventRules(limits: configuration.effectiveLimits, now: now))
    }

    /// The counts a batch's valid events add.
    static func delta(of batch: DecodedBatch, layouts: BucketLayouts) -> RollupDelta {
        var delta = RollupDelta()
        delta.add(batch.columns, layouts: layouts)
        return delta
    }

    /// 422 when the body held events and none was valid, else 200.
    static func status(of batch: DecodedBatch) -> HTTPResponse.Status {
        batch.acceptedCount == 0 && batch.rejectedCount > 0 ? .unprocessableContent : .ok
    }

    /// A body read: decoded, or already answered under its `Idempotency-Key`.
    private enum ReadBody {
        case decoded(DecodedBatch)
        case answered(IdempotentAnswer)
    }

    /// The answer kept under `key`, if any.
    private func keptAnswer(forKey key: String, at now: Timestamp) async throws -> IdempotentAnswer? {
        do {
            return try await store.answer(forKey: key, since: configuration.oldestKeptAnswer(at: now))
        } catch {
            throw Refusal(.storeError, .unavailable("the store could not be read for Idempotency-Key \(key) (\(error)); nothing was applied, retry later", retryAfterSeconds: 5))
        }
    }

    /// The body, decoded, or `earlier` when the request's key has an answer already.
    private func readBody(
        _ bytes: UnsafeBufferPointer<UInt8>, key: String?, earlier: IdempotentAnswer?, fingerprint: inout UInt64, format: BodyFormat,
        decoder: BatchDecoder
    ) throws -> ReadBody {
        if key != nil { fingerprint = BodyFingerprint.of(bytes) }
        if let earlier { return .answered(earlier) }
        return .decoded(try Self.decode(bytes, format: format, decoder: decoder))
    }

    /// The first answer given under the request's key, or 422 when the key came with another body.
    private func replay(_ earlier: IdempotentAnswer, fingerprint: UInt64) throws -> Response {
        guard earlier.bodyFingerprint == fingerprint else {
            throw Refusal(.idempotencyKeyReused, APIError(
                .unprocessableContent,
                "Idempotency-Key \(earlier.key) was already used for a different body at \(RFC3339.format(Timestamp(seconds: earlier.createdAt))); send a new key with each new batch"
            ))
        }
        selfMetrics.recordReplay()
        var response = Response.json(earlier.body, status: HTTPResponse.Status(code: earlier.status))
        response.headers[.idempotentReplayed] = "true"
        return response
    }

    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>, format: BodyFormat, decoder: BatchDecoder) throws(Refusal) -> DecodedBatch {
        do {
            return try decoder.decode(bytes, format: format)
        } catch {
            switch error.kind {
            case .malformed: throw Refusal(.malformedBody, APIError(.badRequest, error.message))
            case .tooManyEvents: throw Refusal(.tooManyEvents, APIError(.contentTooLarge, error.message))
            }
        }
    }

    // MARK: Body (shared with /v1/traces)

    /// The request's body, refused with 413 past `limit` bytes; `advice` says what to send instead.
    static func collectBody(_ request: Request, limit: Int, advice: String) async throws -> ByteBuffer {
        let tooLarge = Refusal(.bodyTooLarge, APIError(.contentTooLarge, "the body is larger than \(limit) bytes; \(advice) or gzip them"))
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw tooLarge }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
        // What arrived must be all that was announced: a shorter body is never read as a whole one.
        if let length = request.headers[.contentLength].flatMap(Int.init), body.readableBytes != length {
            throw Refusal(.malformedBody, APIError(.badRequest, "the body ended after \(body.readableBytes) of the \(length) bytes its Content-Length announced; nothing was applied"))
        }
        return body
    }

    /// Calls `body` with the bytes of `buffer`, inflated first when `gzipped` (refused with 413
    /// past `inflatedLimit`, 503 past what `budget` can hold, 400 when it is not gzip data);
    /// plain bytes are not copied. What inflating took from `budget` is given back on return.
    static func withBytes<T>(
        of buffer: ByteBuffer, gzipped: Bool, inflatedLimit: Int, budget: BodyBudget, advice: String,
        _ body: (UnsafeBufferPointer<UInt8>) throws -> T
    ) throws -> T {
        try buffer.withUnsafeReadableBytes { raw in
            guard gzipped else { return try body(raw.assumingMemoryBound(to: UInt8.self)) }
            var taken = 0
            defer { budget.give(taken) }
            let inflated: [UInt8]
            do throws(Gzip.InflateError) {
                inflated = try Gzip.inflate(raw, limit: inflatedLimit) { bytes in
                    guard budget.take(bytes) else { return false }
                    taken += bytes
                    return true
                }
            } catch .tooLarge(let limit) {
                throw Refusal(.bodyTooLarge, APIError(.contentTooLarge, "the body inflates to more than \(limit) bytes; \(advice)"))
            } catch .invalid(let reason) {
                throw Refusal(.malformedBody, APIError(.badRequest, "Content-Encoding is gzip but \(reason)"))
            } catch .refused {
                throw Refusal(.bodyMemory, budget.refusal())
            }
            return try inflated.withUnsafeBufferPointer(body)
        }
    }

    // MARK: Headers

    /// The layout a `Content-Type` names. A missing one is refused with the others a browser may
    /// send from any web page without asking first (`text/plain`, forms): a JSON body read from
    /// those would let any page a user visits post events (see CrossOriginCheck).
    static func bodyFormat(_ contentType: String?) throws -> BodyFormat {
        switch contentType.map(HeaderParsing.mediaType) {
        case "application/json": return .json
        case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
            return .ndjson
        case let other:
            throw Refusal(.unsupportedMediaType, APIError(
                .unsupportedMediaType,
                "\(other.map { "Content-Type \($0.isEmpty ? "(empty)" : String($0.prefix(100))) is not accepted" } ?? "a Content-Type is required"); send application/json (an event, an array or {\"events\": [...]}) or application/x-ndjson (one event per line)"
            ))
        }
    }

    static func idempotencyKey(_ values: [String]) throws -> String? {
        do {
            return try IdempotencyKey.parse(values)
        } catch {
            throw Refusal(.invalidIdempotencyKey, APIError(.badRequest, error.message))
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

    /// The answer to a batch; with `maxBytes`, the errors listed stop where the answer would pass
    /// it (less room for the rest), and the answer says so: how the answer kept for replay is cut.
    static func answer(_ batch: DecodedBatch, receipt: CommitReceipt, limit: Int, maxBytes: Int = .max) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.member("accepted", batch.acceptedCount)
            w.member("rejected", batch.rejectedCount)
            w.key("errors")
            var listed = 0
            w.array { w in
                for rejection in batch.rejections.prefix(maxListedErrors) {
                    // Room for the members after the list (two short ones and the warnings).
                    if w.bytes.count > maxBytes - 1024 { break }
                    w.object { w in
                        w.member("index", rejection.index)
                        w.member("field", rejection.field)
                        w.member("error", rejection.message)
                    }
                    listed += 1
                }
            }
            if batch.rejections.count > listed {
                w.member("errors_omitted", batch.rejections.count - listed)
            }
            if listed < min(batch.rejections.count, maxListedErrors) {
                w.member("errors_cut", "this answer, kept for retries of its Idempotency-Key, lists the first \(listed) errors that fit in \(maxBytes / 1024) KiB")
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

    /// The refusal for a write that was not made; `resend` says what a resend does when the
    /// commit's outcome is unknown.
    static func apiError(
        for error: WriteError, resend: String = "resend it with the same Idempotency-Key to have it applied exactly once"
    ) -> Refusal {
        switch error {
        case .overloaded(let queued, let capacity):
            Refusal(.overloaded, .unavailable("perfgate is saturated (\(queued) events queued, limit \(capacity)); nothing was applied, retry shortly"))
        case .shuttingDown:
            Refusal(.overloaded, .unavailable("perfgate is shutting down; nothing was applied, retry against another instance or after the restart"))
        case .storeFailed(let message):
            Refusal(.storeError, .unavailable("the store could not commit the batch (\(message)); nothing was applied, retry later", retryAfterSeconds: 5))
        case .outcomeUnknown(let message):
            Refusal(.storeError, .unavailable(
                "the store's answer to the commit was lost (\(message)); the batch may or may not have been applied: \(resend)",
                retryAfterSeconds: 5
            ))
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
