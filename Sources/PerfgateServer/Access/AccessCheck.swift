import Foundation
import HTTPTypes
import Hummingbird

/// Checks a request's token against the access its route declares, before the route's handler runs.
///
/// The check is bound to the route itself when the router is built, not chosen by reading the
/// path: whatever spelling the router resolves to a route (`//v1/events/`), the route's own rule
/// applies. With no tokens configured everything is open, and the start-up log says so.
struct AccessCheck: Sendable {
    let tokens: AccessTokens
    let selfMetrics: SelfMetrics
    /// Decided once: the open case is every request's path.
    private let open: Bool

    init(tokens: AccessTokens, selfMetrics: SelfMetrics) {
        self.tokens = tokens
        self.selfMetrics = selfMetrics
        open = tokens.isOpen
    }

    /// The challenge on the status page: browsers ask for a user name and password on a Basic one.
    static var browserChallenge: String { "Basic realm=\"perfgate\", charset=\"UTF-8\"" }

    /// What a request's `Authorization` header earns it on a route.
    private enum Verdict {
        case allowed
        case noToken(needed: AccessRole)
        case unknownToken
        case lacksRole(needed: AccessRole, held: Set<AccessRole>)
    }

    private func verdict(_ authorization: String?, for route: Route) -> Verdict {
        guard !open, case .role(let needed) = route.access else { return .allowed }
        guard let token = Self.presentedToken(authorization) else { return .noToken(needed: needed) }
        let roles = tokens.roles(of: token)
        if roles.isEmpty { return .unknownToken }
        return roles.contains(needed) || roles.contains(.admin) ? .allowed : .lacksRole(needed: needed, held: roles)
    }

    /// True when a request with `headers` may call `route`. Counts nothing: for the event-loop
    /// ingest path, which leaves every refusal to the router (and so to `authorize`).
    func permits(_ headers: HTTPFields, for route: Route) -> Bool {
        if case .allowed = verdict(headers[.authorization], for: route) { return true }
        return false
    }

    /// True when the request presents a token holding `role` (or admin); never with no tokens
    /// configured, where no request presents one.
    func grants(_ role: AccessRole, to headers: HTTPFields) -> Bool {
        guard !open, let token = Self.presentedToken(headers[.authorization]) else { return false }
        let roles = tokens.roles(of: token)
        return roles.contains(role) || roles.contains(.admin)
    }

    /// Throws the 401 or 403 a request gets for `route`, or returns when it may go on.
    func authorize(_ request: Request, for route: Route) throws {
        // A browser cannot send a bearer token to a page it navigates to; it answers a Basic
        // challenge instead, with the token as the password.
        let forBrowser = route.signsInWithBasic
        switch verdict(request.headers[.authorization], for: route) {
        case .allowed:
            return
        case .noToken(let needed):
            selfMetrics.recordRejectedRequest(.unauthorized)
            throw APIError(
                .unauthorized,
                forBrowser
                    ? "the status page needs a token with the read role: give it as the password (any user name)"
                    : "\(route.name) needs a bearer token with the \(needed.rawValue) role: send Authorization: Bearer <token>",
                headers: [.wwwAuthenticate: forBrowser ? Self.browserChallenge : "Bearer realm=\"perfgate\""]
            )
        case .unknownToken:
            selfMetrics.recordRejectedRequest(.unauthorized)
            throw APIError(
                .unauthorized, "the token is not one perfgate knows",
                headers: [.wwwAuthenticate: forBrowser ? Self.browserChallenge : "Bearer realm=\"perfgate\", error=\"invalid_token\""]
            )
        case .lacksRole(let needed, let roles):
            selfMetrics.recordRejectedRequest(.forbidden)
            let held = roles.map(\.rawValue).sorted().joined(separator: ", ")
            throw APIError(.forbidden, "\(route.name) needs the \(needed.rawValue) role; this token has \(held)")
        }
    }

    /// The token of an `Authorization` header: `Bearer <token>`, or `Basic` credentials whose
    /// password is the token (browsers send those for the status page; the user name is ignored).
    /// The scheme is matched in any case.
    static func presentedToken(_ header: String?) -> Substring? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return nil }
        let credentials = parts[1].drop { $0 == " " }
        let token: Substring
        switch parts[0].lowercased() {
        case "bearer":
            token = credentials
        case "basic":
            guard let decoded = Data(base64Encoded: String(credentials).trimmingCharacters(in: " ")),
                let text = String(validating: Array(decoded), as: UTF8.self),
                let colon = text.firstIndex(of: ":")
            else { return nil }
            token = Substring(text[text.index(after: colon)...])
        default:
            return nil
        }
        return token.isEmpty ? nil : token
    }
}
