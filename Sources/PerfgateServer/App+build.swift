import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import PerfgateCore
import PerfgateStore

/// perfgate's version, as `perfgate --version` and `perfgate_build_info` report it.
package let perfgateVersion = "0.1.0"

/// The `Server` header of every response.
let perfgateServerName = "perfgate/\(perfgateVersion)"

/// The parts of a running perfgate, wired together; tests reach in through these.
struct Components: Sendable {
    let configuration: ServerConfiguration
    let clock: any WallClock
    let store: any RollupStore
    let live: LiveMetrics
    let selfMetrics: SelfMetrics
    let queue: WriteQueue
    let pruner: PruneService
    let connections: ConnectionRegistry
    /// Request bodies held in memory, across connections.
    let bodyBudget: BodyBudget
    /// Large answers not yet taken by their clients' sockets, across connections.
    let answerBudget: BodyBudget
    /// Set when the store is shared with other replicas.
    let replicaView: ReplicaView?
    /// Set when perfgate serves HTTPS.
    let tls: TLSConfiguration?
    /// The token check every route, and the event-loop ingest path, applies.
    let access: AccessCheck
    /// What each connection's event-loop ingest path shares.
    let eventLoopIngest: EventIngestHandler.Settings
    /// Turns at the store's readers for trend queries and status pages.
    let reads: ReadGate
}

/// Builds the application `perfgate serve` runs: opens the store, restores the counts, and
/// wires the routes and background services. Tests build exactly this, from a configuration.
package func buildApplication(
    configuration: ServerConfiguration,
    clock: any WallClock = SystemWallClock(),
    store: (any RollupStore)? = nil,
    logger: Logger = Logger(label: "perfgate")
) async throws -> some ApplicationProtocol {
    let components = try await buildComponents(configuration: configuration, clock: clock, store: store, logger: logger)
    return try buildApplication(components, logger: logger)
}

func buildComponents(
    configuration: ServerConfiguration,
    clock: any WallClock,
    store: (any RollupStore)?,
    logger: Logger
) async throws -> Components {
    try configuration.validate()
    let tls = try configuration.tlsCertificatePath.map { certificate in
        try TLSFiles.serverConfiguration(certificate: certificate, key: configuration.tlsKeyPath ?? "")
    }
    let store = if let store { store } else { try await openStore(configuration, logger: logger) }
    let now = clock.now()
    let window = StageShareWindow(widthMinutes: configuration.stageShareWindowMinutes)
    // A damaged row is skipped where it is read, logged the first time it is found, and counted.
    store.corruptRows.report { [logger] row in
        logger.error("a row of the store is damaged and was skipped; its counts are lost, the rest is served", metadata: ["store.row": "\(row)"])
    }
    (store as? any SharedRollupStore)?.collidingSeries.report { [logger] collision in
        logger.error("a new series' id is held by another series; its counts are not stored", metadata: ["store.series": "\(collision)"])
    }
    let restored = try await store.restore(recentSince: window.firstMinute(at: now))
    let live = LiveMetrics(layouts: configuration.layouts, shareWindowMinutes: configuration.stageShareWindowMinutes)
    live.restore(restored)
    let storeBytes = try await store.sizeInBytes()
    logger.info("store opened", metadata: ["store.series": "\(restored.series.count)", "store.bytes": "\(storeBytes)"])
    let tokens = configuration.accessTokens
    if tokens.isOpen {
        logger.warning("no access tokens are configured: every endpoint is open to anyone who can reach this address (see --tokens-file)")
    } else {
        logger.info(
            "access tokens loaded; /healthz and /readyz stay open",
            metadata: AccessRole.allCases.reduce(into: [:]) { $0["tokens.\($1.rawValue)"] = "\(tokens.count(of: $1))" }
        )
    }

    let connections = ConnectionRegistry(maximum: configuration.maxConnections)
    let bodyBudget = BodyBudget(capacity: configuration.maxBodyMemoryBytes)
    let answerBudget = BodyBudget(capacity: configuration.maxBodyMemoryBytes)
    let selfMetrics = SelfMetrics(version: perfgateVersion, startTime: now)
    selfMetrics.recordWaiting(
        traces: restored.pendingTraces.count,
        rows: restored.pendingTraces.values.reduce(WaitingRows(spans: 0, bytes: 0)) { $0.adding($1) }
    )
    let committer = Committer(
        registry: SeriesRegistry(
            records: restored.series, limit: configuration.maxSeriesPerMetric, numbering: (store as? any SharedRollupStore).map { .shared($0.seriesIDKey) } ?? .sequential,
            lastMinutes: restored.lastMinutes, olderThanKept: now.minute.advanced(by: -configuration.retentionMinutes)
        ),
        pendingTraces: restored.pendingTraces, store: store, live: live, selfMetrics: selfMetrics, clock: clock,
        configuration: configuration, logger: logger
    )
    let queue = WriteQueue(committer: committer, capacity: configuration.maxQueuedEvents)
    let pruner = PruneService(
        queue: queue, clock: clock, retentionMinutes: configuration.retentionMinutes, seriesTTLMinutes: configuration.seriesTTLMinutes,
        traceWaitSeconds: configuration.traceWaitSeconds, intervalSeconds: configuration.pruneIntervalSeconds, logger: logger
    )
    let replicaView = (store as? any SharedRollupStore).map { shared in
        ReplicaView(store: shared, queue: queue, live: live, clock: clock, logger: logger)
    }
    let access = AccessCheck(tokens: configuration.accessTokens, selfMetrics: selfMetrics)
    return Components(
        configuration: configuration, clock: clock, store: store, live: live,
        selfMetrics: selfMetrics, queue: queue, pruner: pruner, connections: connections, bodyBudget: bodyBudget, answerBudget: answerBudget, replicaView: replicaView, tls: tls,
        access: access,
        eventLoopIngest: .init(queue: queue, access: access, selfMetrics: selfMetrics, clock: clock, configuration: configuration),
        reads: ReadGate(concurrent: 2, maxWaiting: configuration.maxQueuedReads)
    )
}

/// The store `configuration` names: every kind of store is opened here, by what `--db` says.
func openStore(_ configuration: ServerConfiguration, logger: Logger) async throws -> any RollupStore {
    let answerRoom = AnswerRoom(maxAnswers: configuration.maxKeptAnswers, maxBytes: configuration.maxKeptAnswerBytes)
    if PostgresLocation.isURL(configuration.databasePath) {
        let location = try PostgresLocation(url: configuration.databasePath)
        let store = try await PostgresRollupStore.open(
            location, instance: configuration.instanceName, layouts: configuration.layouts, answerRoom: answerRoom, logger: logger
        )
        logger.info("shared store opened", metadata: ["store.database": "\(location)", "store.instance": "\(store.instance)"])
        return store
    }
    return try await SQLiteRollupStore.open(
        path: configuration.databasePath, layouts: configuration.layouts, durability: configuration.durability, answerRoom: answerRoom
    )
}

func buildApplication(_ components: Components, logger: Logger) throws -> some ApplicationProtocol {
    let configuration = components.configuration
    let selfMetrics = components.selfMetrics
    let guardSettings = ConnectionGuard.Settings(
        timeout: .seconds(configuration.requestTimeoutSeconds), registry: components.connections, budget: components.bodyBudget,
        answerBudget: components.answerBudget, selfMetrics: selfMetrics, maxBodyBytes: configuration.maxBodyBytes
    )
    var server = HTTPServerBuilder.http1(
        configuration: .init(additionalChannelHandlers: [
            MalformedRequestHandler(selfMetrics: selfMetrics), ConnectionGuard(settings: guardSettings),
            EventIngestHandler(settings: components.eventLoopIngest),
        ])
    )
    if let tls = components.tls {
        server = try .tls(server, tlsConfiguration: tls)
    }
    return Application(
        router: buildRouter(components),
        server: server,
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port),
            serverName: perfgateServerName,
            availableConnectionsDelegate: ConnectionLimit(registry: components.connections)
        ),
        services: [WriterService(queue: components.queue, store: components.store, logger: logger), components.pruner]
            + (components.replicaView.map { [$0] } ?? []),
        logger: logger
    )
}

func buildRouter(_ components: Components) -> Router<BasicRequestContext> {
    // HEAD is answered wherever GET is, by the GET handler behind the same access check.
    let router = Router(options: .autoGenerateHeadEndpoints)
    router.middlewares.add(NotFoundMiddleware())
    router.middlewares.add(UnansweredErrorMiddleware())
    let access = components.access
    let crossOrigin = CrossOriginCheck(
        allowed: components.configuration.allowedOrigins, hostNames: components.configuration.allowedHosts,
        open: components.configuration.accessTokens.isOpen
    )
    let events = EventsController<BasicRequestContext>(
        queue: components.queue, store: components.store, selfMetrics: components.selfMetrics,
        clock: components.clock, configuration: components.configuration, bodyBudget: components.bodyBudget
    )
    let traces = TracesController<BasicRequestContext>(
        queue: components.queue, selfMetrics: components.selfMetrics, clock: components.clock, configuration: components.configuration,
        bodyBudget: components.bodyBudget
    )
    let trends = TrendsController<BasicRequestContext>(
        live: components.live, store: components.store, clock: components.clock, configuration: components.configuration, reads: components.reads
    )
    let metrics = MetricsController<BasicRequestContext>(
        live: components.live, selfMetrics: components.selfMetrics, queue: components.queue,
        store: components.store, connections: components.connections, budget: components.bodyBudget, answerBudget: components.answerBudget, clock: components.clock,
        reads: components.reads
    )
    let status = StatusController<BasicRequestContext>(components: components)
    let series = SeriesController<BasicRequestContext>(live: components.live, queue: components.queue)
    let health = HealthController<BasicRequestContext>(queue: components.queue, access: access, corruptRows: components.store.corruptRows)

    for route in Route.allCases {
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response =
            switch route {
            case .statusPage: status.page
            case .postEvents: events.post
            case .postTraces: traces.post
            case .metrics: metrics.scrape
            case .trends: trends.trends
            case .listSeries: series.list
            case .deleteSeries: series.delete
            case .healthz: health.alive
            case .readyz: health.ready
            }
        router.on(RouterPath(route.path), method: route.method, responder: GuardedResponder(route: route, access: access, crossOrigin: crossOrigin, handler: handler))
    }
    // Every other method on a known path: 405 with Allow, resolved by the same router, so it
    // sees the same spellings of the path as the routes do.
    for path in Route.paths {
        let allowed = Route.allowedMethods[path] ?? []
        for method in MethodNotAllowedResponder<BasicRequestContext>.knownMethods where !allowed.contains(method) {
            router.on(RouterPath(path), method: method, responder: MethodNotAllowedResponder(path: path, allowed: allowed))
        }
    }
    return router
}
