import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import PerfgateCore

/// Answers a request the HTTP parser cannot read with a JSON error saying why, then closes.
///
/// Without it the connection gets a bare 400 with no body: a client whose headers outgrew the
/// limit could not tell that from any other mistake. Oversized headers get 431, as RFC 6585 says.
final class MalformedRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    /// The most header bytes a request may carry (the HTTP decoder's limit).
    static let maxHeaderBytes = 80 * 1024

    private let selfMetrics: SelfMetrics
    private var answered = false

    init(selfMetrics: SelfMetrics) {
        self.selfMetrics = selfMetrics
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !answered else { return }
        answered = true
        let (status, message) = Self.answer(for: parserError)
        selfMetrics.recordRejectedRequest(.malformedHTTP)
        let body = APIError(status, message).body
        var fields = Response.jsonHeaders
        fields[.contentLength] = String(body.count)
        fields[.connection] = "close"
        let head = HTTPResponse(status: status, headerFields: fields)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: body))), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    static func answer(for error: HTTPParserError) -> (HTTPResponse.Status, String) {
        switch error {
        case .headerOverflow:
            (.init(code: 431, reasonPhrase: "Request Header Fields Too Large"), "the request's headers are larger than \(maxHeaderBytes / 1024) KiB")
        case .invalidCharactersUsed, .invalidHeaderToken, .invalidConstant:
            (.badRequest, "the request is not valid HTTP/1.1: a header name or value holds characters HTTP does not allow")
        case .invalidContentLength, .unexpectedContentLength:
            (.badRequest, "the request is not valid HTTP/1.1: its Content-Length is not a single non-negative number")
        case .invalidChunkSize:
            (.badRequest, "the request is not valid HTTP/1.1: its chunked body is malformed")
        default:
            (.badRequest, "the request is not valid HTTP/1.1 (\(error))")
        }
    }
}
