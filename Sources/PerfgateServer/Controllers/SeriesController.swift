import Hummingbird
import PerfgateCore

/// `GET /v1/series?label=value…` lists the series a selector matches (every series without one);
/// `DELETE` with the same query removes them from `/metrics` and from the store.
struct SeriesController<Context: RequestContext>: Sendable {
    let live: LiveMetrics
    let queue: WriteQueue

    /// At most this many series are listed in one answer; the rest are counted.
    static var maxListed: Int { 1000 }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        // Listing everything is harmless; deleting everything takes a selector per family.
        let selector = (request.uri.query ?? "").isEmpty ? SeriesSelector() : try Self.selector(request)
        let keys = HistogramMetric.allCases.flatMap { live.records(of: $0).map(\.key) }.filter(selector.matches)
        return Response.json(Self.answer(count: "matched", keys: keys))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        let selector = try Self.selector(request)
        let deleted: [SeriesKey]
        do {
            deleted = try await queue.delete(matching: selector)
        } catch let error as WriteError {
            throw APIError.unavailable("the series could not be deleted (\(error)); nothing was deleted, retry later", retryAfterSeconds: 5)
        }
        return Response.json(Self.answer(count: "deleted", keys: deleted))
    }

    private static func selector(_ request: Request) throws -> SeriesSelector {
        do {
            return try SeriesSelector.parse(QueryString.parse(request.uri.query ?? ""))
        } catch let error as QueryStringError {
            throw APIError(.badRequest, error.message)
        } catch let error as SeriesSelectorError {
            throw APIError(.badRequest, error.message)
        }
    }

    static func answer(count name: String, keys: [SeriesKey]) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.member(name, keys.count)
            w.key("series")
            w.array { w in
                for key in keys.prefix(maxListed) {
                    w.object { w in
                        w.member("metric", key.metric.name)
                        w.key("labels")
                        w.object { w in
                            for (label, value) in zip(key.metric.labelNames, key.labelValues) { w.member(label, value) }
                        }
                    }
                }
            }
            if keys.count > maxListed { w.member("series_omitted", keys.count - maxListed) }
        }
        return writer.bytes
    }
}
