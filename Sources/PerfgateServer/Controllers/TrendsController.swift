import Hummingbird
import PerfgateCore

/// `GET /v1/trends`: a quantile over the last window against the same window `offset` ago.
struct TrendsController<Context: RequestContext>: Sendable {
    let live: LiveMetrics
    let store: any RollupStore
    let clock: any WallClock
    let configuration: ServerConfiguration
    let reads: ReadGate

    @Sendable func trends(_ request: Request, context: Context) async throws -> Response {
        let query: TrendQuery
        do {
            let parameters = try QueryString.parse(request.uri.query ?? "")
            query = try TrendQuery.parse(parameters, retentionMinutes: configuration.retentionMinutes)
        } catch let error as QueryStringError {
            throw APIError(.badRequest, error.message)
        } catch let error as TrendQueryError {
            throw APIError(.badRequest, error.message)
        }
        return try await reads.run("a trend query") {
            let now = clock.now()
            // Only the series the filters keep are read: the store skips the rest's rows unread.
            let series = live.records(of: query.metric).filter { query.matches($0.key) }
            let ids = Set(series.map(\.id))
            // The two windows are read at once.
            async let currentRead = store.windowTotals(of: query.metric, series: ids, minutes: query.currentMinutes(at: now))
            async let previousRead = store.windowTotals(of: query.metric, series: ids, minutes: query.previousMinutes(at: now))
            let (current, previous) = try await (currentRead, previousRead)
            let report = TrendReport(
                query: query, now: now, series: series, current: current, previous: previous,
                layout: configuration.layouts[query.metric]
            )
            return Response.json(report.json())
        }
    }
}
