import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes

/// What a connection may cost: a deadline whenever the server waits on the client, a place in
/// the connection registry, and the body budget for what its requests bring.
///
/// The deadline runs from the moment the connection opens, or the moment the last answer it was
/// owed has been written, until its next request has fully arrived: head and body. An answer
/// written before its request's body has arrived (`/healthz` does not read a body) does not
/// restart it, so a body sent after its answer, or never, is cut off by the same deadline, and
/// so is an idle keep-alive connection. While an answer is written the client must read it within
/// the same time. Only while the server works on a complete request is there no deadline: that
/// time is the server's, and the store has its own limits.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What every connection's guard shares.
    struct Settings: Sendable {
        let timeout: TimeAmount
        let registry: ConnectionRegistry
        let budget: BodyBudget
        /// Answer bodies written and not yet taken by the client's socket, across connections.
        let answerBudget: BodyBudget
        let selfMetrics: SelfMetrics
        /// Bodies longer than this are refused by the routes at their head; they take no budget here.
        let maxBodyBytes: Int
    }

    private let settings: Settings
    private var slot: ConnectionRegistry.Slot?
    private var deadline: Scheduled<Void>?
    /// When the deadline was last armed.
    private var armedAt = NIODeadline.uptimeNanoseconds(0)
    /// Request heads seen, requests fully arrived, and answers fully written.
    private var started = 0
    private var ended = 0
    private var answered = 0
    /// An answer's head is written and its end is not.
    private var writing = false
    /// The budget bytes this connection's requests hold.
    private var held = 0
    /// The request arriving is chunked: its body takes from the budget as it arrives.
    private var chunked = false
    /// Runs while answers back up unread; a read asked for meanwhile waits for them to drain.
    private var drainDeadline: Scheduled<Void>?
    private var readHeld = false
    /// The request arriving was refused at its head: its parts go nowhere.
    private var refused = false

    init(settings: Settings) {
        self.settings = settings
    }

    func handlerAdded(context: ChannelHandlerContext) {
        slot = settings.registry.register(context.channel)
        arm(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cutOff(context)
        leave()
        context.fireChannelInactive()
    }

    // A client that does not read its answers backs them up in memory: pipelined requests
    // answered into a socket nobody reads each wrote a small answer and restarted the deadline.
    // While answers back up, no more requests are read, the connection counts as waiting on its
    // client (so it may be closed to make room), and the client has one deadline to drain them,
    // whatever is written meanwhile.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            drainDeadline?.cancel()
            drainDeadline = nil
            if readHeld {
                readHeld = false
                context.read()
            }
        } else if drainDeadline == nil {
            drainDeadline = closeOnTimeout(context)
        }
        slot?.phase = phase
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if drainDeadline != nil {
            readHeld = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { cutOff(context) }
        context.fireUserInboundEventTriggered(event)
    }

    /// A request whose body stops arriving (the client closed its side, the connection closed,
    /// its deadline passed, it was closed to make room) is an error to whoever reads the body,
    /// never a shorter body: half of an NDJSON batch is valid NDJSON, and applying it would count
    /// part of a batch the client will send again (or burn its Idempotency-Key on half of it).
    private func cutOff(_ context: ChannelHandlerContext) {
        guard started > ended, !refused else { return }
        ended = started
        context.fireErrorCaught(IncompleteRequest())
    }

    /// The error the reader of a request's body sees when the body stops arriving.
    struct IncompleteRequest: Error, CustomStringConvertible {
        var description: String { "the connection closed before the request's body had fully arrived" }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            started += 1
            chunked = false
            if !admit(head) {
                refuse(context: context)
                return
            }
        case .body(let chunk):
            if refused { return }
            // A chunked body not yet answered holds what it brings; past the budget it is cut off,
            // since its head has gone on and cannot be answered here any more.
            if chunked, answered < started, let slot {
                guard settings.registry.hold(chunk.readableBytes, for: slot, in: .bodies, budget: settings.budget, force: false) else {
                    settings.selfMetrics.recordRejectedRequest(.bodyMemory)
                    context.close(promise: nil)
                    return
                }
                held += chunk.readableBytes
            }
        case .end:
            ended += 1
            if refused {
                // The refused request has been read to its end (and dropped): the client has
                // certainly read its answer's start, and the connection closes as it said.
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(data)
            update(context, requestEnded: true)
            return
        }
        context.fireChannelRead(data)
        update(context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .body(let body) where body.readableBytes > BodyBudget.smallBodyBytes:
            // A large answer to a client that does not read it stays in memory until the deadline;
            // many such clients (pipelining requests for /metrics, say) would hold gigabytes. Large
            // answers share a budget until the socket has taken them; past it, the connections
            // whose answers have waited longest are closed to make room, as at the connection cap.
            guard let slot else { break }
            let bytes = body.readableBytes
            settings.registry.hold(bytes, for: slot, in: .answers, budget: settings.answerBudget, force: true)
            let sent = context.eventLoop.makePromise(of: Void.self)
            let (registry, budget) = (settings.registry, settings.answerBudget)
            sent.futureResult.whenComplete { _ in registry.release(bytes, for: slot, in: .answers, budget: budget) }
            if let promise { sent.futureResult.cascade(to: promise) }
            context.write(data, promise: sent)
            update(context)
            return
        case .head(let head) where head.status.kind != .informational:
            writing = true
        case .end:
            writing = false
            answered += 1
        default:
            break
        }
        context.write(data, promise: promise)
        update(context)
    }

    /// Whether the request with `head` may go on: a body of known length over the small size
    /// takes its length from the budget, or the request is refused before its body is read.
    private func admit(_ head: HTTPRequest) -> Bool {
        if let length = head.headerFields[.contentLength].flatMap(Int.init) {
            guard length > BodyBudget.smallBodyBytes, length <= settings.maxBodyBytes else { return true }
            guard let slot, settings.registry.hold(length, for: slot, in: .bodies, budget: settings.budget, force: false) else { return false }
            held += length
        } else {
            chunked = head.headerFields[.transferEncoding] != nil
        }
        return true
    }

    /// Answers 503 at once, then reads the rest of the request and drops it, and closes once it
    /// has arrived (the answer says `Connection: close`). Closing at once would reset the
    /// connection under a client still sending its body, and it would never read the answer;
    /// dropping costs no memory, and the deadline still runs.
    private func refuse(context: ChannelHandlerContext) {
        refused = true
        settings.selfMetrics.recordRejectedRequest(.bodyMemory)
        let error = settings.budget.refusal()
        var fields = Response.jsonHeaders
        fields[.contentLength] = String(error.body.count)
        fields[.connection] = "close"
        fields.append(contentsOf: error.headers)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: error.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: error.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Whose time it is, which decides the deadline.
    private enum Turn {
        /// The client owes a request, or the rest of one: the deadline runs.
        case client
        /// The server works on a complete request: no deadline.
        case server
        /// The server writes an answer the client must read: the deadline runs.
        case reading
    }

    private var turn = Turn.client

    /// What the shedder sees: answering while the server works or writes, unless answers back up
    /// unread; waiting otherwise.
    private var phase: ConnectionRegistry.Phase {
        if turn != .client, drainDeadline == nil { return .answering }
        return ended > 0 && answered > 0 ? .waitingAgain : .waitingFirst
    }

    /// Moves the connection to the turn its counts say, arming or disarming the deadline when the
    /// turn changes, never within one: the deadline that runs while a client owes a request runs
    /// on however the client sends it and whatever is answered meanwhile.
    private func update(_ context: ChannelHandlerContext, requestEnded: Bool = false) {
        guard let slot else { return }
        let now: Turn = started > ended ? .client : writing ? .reading : ended > answered ? .server : .client
        if answered == started, held > 0 {
            // Everything that arrived is answered: a body still arriving after its answer is read
            // and dropped, not held.
            settings.registry.release(held, for: slot, in: .bodies, budget: settings.budget)
            held = 0
        }
        defer { slot.phase = phase }
        if now != turn {
            let before = turn
            turn = now
            if now == .server {
                disarm()
            } else if before == .reading, now == .client, NIODeadline.now() - armedAt < .milliseconds(10) {
                // An answer written in one go (most are): the deadline it armed a moment ago serves
                // as the idle one, rather than a second timer per request.
            } else {
                arm(context)
            }
        } else if requestEnded, now == .client {
            // A request that arrived whole after its answer: the connection is idle from here,
            // for a full period, as after any answer.
            arm(context)
        }
    }

    private func arm(_ context: ChannelHandlerContext) {
        disarm()
        armedAt = .now()
        deadline = closeOnTimeout(context)
    }

    /// Closes the connection, counted as timed out, after `--request-timeout`.
    private func closeOnTimeout(_ context: ChannelHandlerContext) -> Scheduled<Void> {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let registry = settings.registry
        return context.eventLoop.scheduleTask(in: settings.timeout) {
            registry.recordTimeout()
            loopBound.value.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }

    private func leave() {
        disarm()
        drainDeadline?.cancel()
        drainDeadline = nil
        if let slot {
            settings.registry.release(held, for: slot, in: .bodies, budget: settings.budget)
            settings.registry.unregister(slot)
            self.slot = nil
        }
        held = 0
    }
}
