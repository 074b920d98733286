import HTTPTypes

/// Every route perfgate serves, with the access it needs: the one table the router, the access
/// checks, the 404 and 405 answers, `perfgate routes` and the OpenAPI coverage test read.
///
/// A new case does not compile until it has a method, a path, an access rule and a handler
/// (`buildRouter` binds handlers with an exhaustive switch), so no route can be served unguarded.
package enum Route: CaseIterable, Sendable {
    case statusPage
    case postEvents
    case postTraces
    case metrics
    case trends
    case listSeries
    case deleteSeries
    case healthz
    case readyz

    /// The request method.
    package var method: HTTPRequest.Method {
        switch self {
        case .statusPage, .metrics, .trends, .listSeries, .healthz, .readyz: .get
        case .postEvents, .postTraces: .post
        case .deleteSeries: .delete
        }
    }

    /// The path, as the router matches it (it also takes empty segments, so `//metrics/` is `/metrics`).
    package var path: String {
        switch self {
        case .statusPage: "/"
        case .postEvents: "/v1/events"
        case .postTraces: "/v1/traces"
        case .metrics: "/metrics"
        case .trends: "/v1/trends"
        case .listSeries, .deleteSeries: "/v1/series"
        case .healthz: "/healthz"
        case .readyz: "/readyz"
        }
    }

    /// Who may call it.
    package var access: RouteAccess {
        switch self {
        case .postEvents, .postTraces: .role(.ingest)
        case .statusPage, .metrics, .trends, .listSeries: .role(.read)
        case .deleteSeries: .role(.admin)
        // Probes carry no secrets and must work before anyone has a token.
        case .healthz, .readyz: .open
        }
    }

    /// What it does, in a few words.
    package var summary: String {
        switch self {
        case .statusPage: "the status page"
        case .postEvents: "send timing events"
        case .postTraces: "send OpenTelemetry spans (OTLP/HTTP)"
        case .metrics: "Prometheus exposition"
        case .trends: "a quantile now against an earlier window"
        case .listSeries: "list the series a label selector matches"
        case .deleteSeries: "delete the series a label selector matches"
        case .healthz: "the process answers"
        case .readyz: "perfgate can take writes now"
        }
    }

    /// True for the page browsers navigate to: they cannot send a bearer token there, so it
    /// challenges for Basic credentials whose password is the token.
    var signsInWithBasic: Bool { self == .statusPage }

    /// True for the routes a request changes something through: a browser must not be made to
    /// call them from another site.
    var changesState: Bool { method != .get }

    /// The method's name: `GET`, `POST`, `DELETE`.
    package var methodName: String { method.rawValue }

    /// `METHOD /path`, as answers name a route.
    package var name: String { "\(method) \(path)" }

    /// The methods each path answers, in table order; `HEAD` wherever `GET` is served.
    static let allowedMethods: [String: [HTTPRequest.Method]] = {
        var methods: [String: [HTTPRequest.Method]] = [:]
        for route in allCases {
            methods[route.path, default: []].append(route.method)
            if route.method == .get { methods[route.path]!.append(.head) }
        }
        return methods
    }()

    /// Every path, each once, in table order.
    static var paths: [String] {
        var seen: Set<String> = []
        return allCases.map(\.path).filter { seen.insert($0).inserted }
    }

    /// Every route, for answers that list them: `GET /, POST /v1/events, …`.
    static var listing: String { allCases.map(\.name).joined(separator: ", ") }
}

/// Who may call a route.
package enum RouteAccess: Sendable, Equatable {
    /// Anyone: no token is asked for.
    case open
    /// A bearer token holding this role, or the admin role.
    case role(AccessRole)

    /// `open`, or the role's name.
    package var name: String {
        switch self {
        case .open: "open"
        case .role(let role): role.rawValue
        }
    }
}
