import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes
import PerfgateCore
import Synchronization

/// Answers `POST /v1/events` on the event loop that owns the connection, with no Swift task
/// per request.
///
/// Through the router a small request costs more than the work it carries: a task suspended and
/// resumed for its body and again for its commit, logger metadata, a route lookup. A request
/// this handler can answer exactly as the router would (the events route, a token that may
/// call it, a JSON or NDJSON body of known length, no `Idempotency-Key`, not from a browser, a
/// body that decodes) is decoded here, handed to the write queue with a callback, and answered
/// from that callback on this loop. Every other request, and every one of these it would refuse, goes on to the
/// router unchanged, so each refusal is written in one place.
///
/// Answers leave in request order: a request is taken here only when the router owes no answer
/// on the connection, and while one commits, whatever arrives after it (parts, and the client's
/// end of input) waits here, and once something waits the connection is not read.
final class EventIngestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What every connection's handler shares.
    struct Settings: Sendable {
        let queue: WriteQueue
        let access: AccessCheck
        let selfMetrics: SelfMetrics
        let clock: any WallClock
        let configuration: ServerConfiguration
        /// Requests this handler answered itself (the rest went to the router).
        let answered = Tally()

        /// Bodies up to this size are read here; larger ones are the router's, which decodes them
        /// off the event loop (taking 1,000-event bodies here cost 6-14% more CPU per event: the
        /// loop reads nothing for other connections while it decodes).
        var maxBodyBytes: Int { min(configuration.maxBodyBytes, 64 * 1024) }
    }

    private enum State {
        /// Between requests.
        case idle
        /// Passing a request's parts on to the router.
        case forwarding
        /// Reading the body of a request this handler answers unless the body fails to decode.
        case reading(HTTPRequest, BodyFormat, length: Int, ByteBuffer)
        /// Waiting for the commit of the request it read.
        case committing
    }

    private let settings: Settings
    private var state = State.idle
    /// Requests passed to the router that it has not answered yet.
    private var routerOwes = 0
    /// What arrived while a request committed, in order.
    private var waiting = CircularBuffer<Arrival>()
    /// A read the channel asked for while parts waited behind a commit.
    private var readWaits = false
    /// The server is shutting down: every request goes to the router, which closes the connection.
    private var quiescing = false
    /// The shutdown notice, kept from the next handler until this one's request is answered.
    private var heldQuiesce: Any?
    private var date = (second: Int64.min, text: "")
    /// The body being answered, decoded. Its storage is kept for the connection's next body, so
    /// that a small one decodes with almost no allocation.
    private var decoded = DecodedBatch()
    /// The last answer to a body whose events were all accepted with no warning, with the second
    /// of its `Date` header: the next such answer is the same bytes.
    private var lastPlainAnswer: (accepted: Int, date: String, head: HTTPResponse, body: ByteBuffer)?

    private enum Arrival {
        case part(HTTPRequestPart)
        /// An inbound event, such as the end of the client's input: passed on before the answer,
        /// the next handler would close a connection it thinks idle.
        case event(Any)
    }

    init(settings: Settings) {
        self.settings = settings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .committing = state {
            waiting.append(.part(part))
        } else {
            handle(part, context: context)
        }
    }

    // A client that waits for each answer sends nothing during the commit, so the read goes on and
    // the socket stays registered for reading: holding it would drop the registration and add it
    // again (two `epoll_ctl` calls per request). Reads stop once something is waiting, which bounds
    // what a pipelining client can queue here to one read.
    func read(context: ChannelHandlerContext) {
        if case .committing = state, !waiting.isEmpty {
            readWaits = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { routerOwes -= 1 }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            if case .committing = state { waiting.append(.event(event)) } else { context.fireUserInboundEventTriggered(event) }
            return
        }
        quiescing = true
        // The next handler closes an idle connection at once; it does not know of a request here.
        switch state {
        case .reading, .committing: heldQuiesce = event
        case .idle, .forwarding: context.fireUserInboundEventTriggered(event)
        }
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let head)):
            if let (format, length) = takes(head) {
                state = .reading(head, format, length: length, ByteBuffer())
            } else {
                forward(part, context: context)
                state = .forwarding
            }
        case (.reading(let head, let format, let length, var body), .body(var chunk)):
            if body.readableBytes == 0, chunk.readableBytes == length {
                body = chunk  // the whole body in one read: kept as it came, not copied
            } else {
                state = .idle  // leaves `body` the only reference, so the write below copies nothing
                if body.capacity == 0 { body = context.channel.allocator.buffer(capacity: length) }
                body.writeBuffer(&chunk)
            }
            state = .reading(head, format, length: length, body)
        case (.reading(let head, let format, _, let body), .end(let trailers)):
            state = .idle
            ingest(head, format: format, body: body, trailers: trailers, context: context)
            if case .idle = state { releaseQuiesce(context: context) }
        case (.forwarding, .end):
            forward(part, context: context)
            state = .idle
        default:
            // The rest of a forwarded request, or a part out of order, which the router refuses.
            forward(part, context: context)
        }
    }

    private func forward(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if case .head = part { routerOwes += 1 }
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// The body format and length of a request this handler may take, or nil when it is the router's.
    private func takes(_ head: HTTPRequest) -> (BodyFormat, Int)? {
        guard routerOwes == 0, !quiescing, head.method == Route.postEvents.method, head.path == Route.postEvents.path else { return nil }
        let fields = head.headerFields
        guard let length = fields[.contentLength].flatMap(Int.init), length <= settings.maxBodyBytes,
            fields[.transferEncoding] == nil, fields[.contentEncoding] == nil, fields[.expect] == nil,
            Self.keepsAlive(fields[.connection]), fields[.idempotencyKey] == nil,
            // What a browser sent is the router's to check (CrossOriginCheck); other clients send neither.
            fields[.origin] == nil, fields[.secFetchSite] == nil,
            let format = try? EventsController<BasicRequestContext>.bodyFormat(fields[.contentType]),
            settings.access.permits(fields, for: .postEvents)
        else { return nil }
        return (format, length)
    }

    /// True for no `Connection` header or one that only asks to keep the connection (HTTP/1.1's
    /// default, which many clients send anyway); `close` and the rest are the router's to honour.
    private static func keepsAlive(_ connection: String?) -> Bool {
        guard let connection else { return true }
        return connection.split(separator: ",").allSatisfy { $0.filter { $0 != " " && $0 != "\t" }.lowercased() == "keep-alive" }
    }

    private func ingest(_ head: HTTPRequest, format: BodyFormat, body: ByteBuffer, trailers: HTTPFields?, context: ChannelHandlerContext) {
        let configuration = settings.configuration
        let now = settings.clock.now()
        let decoder = EventsController<BasicRequestContext>.decoder(configuration, at: now)
        let read = trailers == nil && body.withUnsafeReadableBytes { bytes in
            (try? decoder.decode(bytes.assumingMemoryBound(to: UInt8.self), format: format, into: &decoded)) != nil
        }
        guard read else {
            keepDecodedIfSmall()
            // The router answers what this handler will not: a body it cannot decode, trailers.
            forward(.head(head), context: context)
            if body.readableBytes > 0 { forward(.body(body), context: context) }
            forward(.end(trailers), context: context)
            return
        }
        let delta = EventsController<BasicRequestContext>.delta(of: decoded, layouts: configuration.layouts)
        guard !delta.isEmpty else {
            answer(receipt: CommitReceipt(), at: now, context: context)
            return
        }
        state = .committing
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        settings.queue.submit(delta, on: loop) { result in
            let (handler, context) = bound.value
            handler.committed(result, at: now, context: context)
        }
    }

    private func committed(_ result: Result<CommitReceipt, WriteError>, at now: Timestamp, context: ChannelHandlerContext) {
        state = .idle
        switch result {
        case .success(let receipt):
            answer(receipt: receipt, at: now, context: context)
        case .failure(let error):
            let refusal = EventsController<BasicRequestContext>.apiError(for: error)
            settings.selfMetrics.recordRejectedRequest(refusal.reason)
            respond(refusal.error.status, body: refusal.error.body, headers: refusal.error.headers, context: context)
            keepDecodedIfSmall()
        }
        resume(context: context)
    }

    /// Answers the body in `decoded`.
    private func answer(receipt: CommitReceipt, at now: Timestamp, context: ChannelHandlerContext) {
        settings.answered.add()
        settings.selfMetrics.recordBatch(accepted: decoded.acceptedCount, rejections: decoded.rejections, at: now)
        defer { keepDecodedIfSmall() }
        // Whether the answer of a fully accepted body can be the last one sent again: it depends
        // only on how many events it held, and its head only on the second.
        let plain = decoded.rejections.isEmpty && receipt.overflowed.isEmpty
        if plain, let last = lastPlainAnswer, last.accepted == decoded.acceptedCount, last.date == httpDate() {
            send(last.head, body: last.body, context: context)
            return
        }
        let body = EventsController<BasicRequestContext>.answer(decoded, receipt: receipt, limit: settings.configuration.maxSeriesPerMetric)
        let (head, buffer) = response(EventsController<BasicRequestContext>.status(of: decoded), body: body, context: context)
        if plain { lastPlainAnswer = (decoded.acceptedCount, date.text, head, buffer) }
        send(head, body: buffer, context: context)
    }

    /// Drops the decoded body's storage unless it is small (a few KiB at most, whatever the
    /// body held), so that an idle connection does not hold a large body's worth.
    private func keepDecodedIfSmall() {
        if decoded.total > 32 || decoded.columns.stages.count > 256 { decoded = DecodedBatch() }
    }

    /// Writes a JSON answer with the headers the router's answers carry.
    private func respond(_ status: HTTPResponse.Status, body: [UInt8], headers: HTTPFields = [:], context: ChannelHandlerContext) {
        let (head, buffer) = response(status, body: body, headers: headers, context: context)
        send(head, body: buffer, context: context)
    }

    /// A JSON answer's head, with the headers the router's answers carry, and its body.
    private func response(
        _ status: HTTPResponse.Status, body: [UInt8], headers: HTTPFields = [:], context: ChannelHandlerContext
    ) -> (HTTPResponse, ByteBuffer) {
        var fields = Response.jsonHeaders
        fields[.contentLength] = String(body.count)
        fields.append(contentsOf: headers)
        fields[.date] = httpDate()
        fields[.server] = perfgateServerName
        return (HTTPResponse(status: status, headerFields: fields), context.channel.allocator.buffer(bytes: body))
    }

    private func send(_ head: HTTPResponse, body: ByteBuffer, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// After an answer: the parts that waited go on, then the read and the shutdown notice that did.
    private func resume(context: ChannelHandlerContext) {
        let passed = !waiting.isEmpty
        while let arrival = waiting.popFirst() {
            switch arrival {
            case .part(let part): handle(part, context: context)
            case .event(let event): context.fireUserInboundEventTriggered(event)
            }
            if case .committing = state { break }
        }
        if passed { context.fireChannelReadComplete() }
        if case .committing = state { return }
        releaseQuiesce(context: context)
        if readWaits {
            readWaits = false
            context.read()
        }
    }

    /// Passes on the shutdown notice held while this handler's request was unanswered.
    private func releaseQuiesce(context: ChannelHandlerContext) {
        guard let event = heldQuiesce else { return }
        heldQuiesce = nil
        context.fireUserInboundEventTriggered(event)
    }

    /// The `Date` header (the time of day, whatever clock events are judged by), formatted once a second.
    private func httpDate() -> String {
        let now = SystemWallClock().now()
        let second = now.nanoseconds / 1_000_000_000
        if second != date.second { date = (second, HTTPDate.format(now)) }
        return date.text
    }
}

/// A count several event loops add to.
final class Tally: Sendable {
    private let value = Atomic<Int>(0)

    func add() {
        value.add(1, ordering: .relaxed)
    }

    var count: Int { value.load(ordering: .relaxed) }
}
