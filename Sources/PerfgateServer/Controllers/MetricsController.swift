import HTTPTypes
import Hummingbird
import NIOCore
import PerfgateCore

/// `GET /metrics`: the seed's five families and perfgate's own, in text format 0.0.4, or in the
/// protobuf format with native histograms when the scraper asks for it.
struct MetricsController<Context: RequestContext>: Sendable {
    let live: LiveMetrics
    let selfMetrics: SelfMetrics
    let queue: WriteQueue
    let store: any RollupStore
    let connections: ConnectionRegistry
    let budget: BodyBudget
    let answerBudget: BodyBudget
    let clock: any WallClock
    let reads: ReadGate

    @Sendable func scrape(_ request: Request, context: Context) async throws -> Response {
        let format = HeaderParsing.expositionFormat(request.headers[.accept])
        let page = try await render(format: format)
        var headers: HTTPFields = [.contentType: format.contentType, .vary: "Accept, Accept-Encoding", .xContentTypeOptions: "nosniff"]
        var body = page
        if HeaderParsing.acceptsGzip(request.headers[.acceptEncoding]) {
            body = page.withUnsafeReadableBytes { Gzip.deflate($0) }
            headers[.contentEncoding] = "gzip"
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    /// The page, from a snapshot copied under the locks and rendered outside them.
    func render(format: ExpositionWriter.Format = .text) async throws -> ByteBuffer {
        let storeSize = try await store.sizeInBytes()
        let snapshot = live.snapshot(at: clock.now())
        let gauges = SelfMetrics.Gauges(
            seriesCounts: snapshot.histograms.mapValues(\.count),
            storeSizeBytes: storeSize,
            queuedEvents: queue.queuedEvents,
            openConnections: connections.open,
            connectionLimitReached: connections.limitReached,
            connectionsShed: connections.shed,
            connectionsTimedOut: connections.timedOut,
            bodyBytesHeld: budget.inUse,
            answerBytesHeld: answerBudget.inUse,
            answersDropped: connections.droppedAnswers,
            corruptRows: store.corruptRows.count,
            seriesCollisions: (store as? any SharedRollupStore)?.collidingSeries.count ?? 0,
            answersEvicted: store.answerRoom.forgottenCount,
            reads: reads.figures
        )
        return ExpositionPage.render(snapshot.families() + selfMetrics.families(gauges), capacity: snapshot.estimatedBytes, format: format)
    }
}
