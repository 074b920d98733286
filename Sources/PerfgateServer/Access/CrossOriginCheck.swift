import HTTPTypes
import Hummingbird
import PerfgateCore

extension HTTPField.Name {
    /// Where a browser says a request comes from: `same-origin`, `same-site`, `cross-site` or `none`.
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
}

/// Refuses state-changing requests that a web page on another site made a browser send.
///
/// A page anywhere on the web can make its visitor's browser post to a perfgate on their laptop
/// or intranet: `fetch(url, {method: "POST", mode: "no-cors"})` sends no preflight, and the
/// browser adds any Basic credentials it holds for perfgate's status page. Browsers say where a
/// request comes from (`Sec-Fetch-Site`, and `Origin` on every POST and DELETE); clients that
/// are not browsers send neither. So a request whose `Sec-Fetch-Site` is not `same-origin` or
/// `none` (typed by the user), or whose `Origin` names another host than the one it was sent to,
/// is refused unless its origin is listed in `--allowed-origins`. Safe methods are not checked:
/// they change nothing.
struct CrossOriginCheck: Sendable {
    /// Origins whose pages may send state-changing requests, as browsers write them.
    let allowed: Set<String>
    /// Host names (beyond IP addresses and `localhost`) browsers may reach an open perfgate by;
    /// nil when tokens are configured, where a page renamed to perfgate's address holds no token.
    let hostNames: Set<String>?

    init(allowed: [String], hostNames: [String] = [], open: Bool = false) {
        self.allowed = Set(allowed.map(Self.normalized))
        self.hostNames = open ? Set(hostNames.map { $0.lowercased() } + self.allowed.compactMap { Self.host(of: $0).map(Self.name(of:)) }) : nil
    }

    /// nil when a browser may use this address, else why not: with no tokens, a page whose own
    /// name was made to resolve to perfgate's address (DNS rebinding) is same-origin with it, and
    /// could read and write everything. Only IP addresses, `localhost` and the names given are
    /// taken from browsers; clients that are not browsers (no `Origin`, no `Sec-Fetch-Site`) may
    /// use any name.
    func hostRefusal(_ fields: HTTPFields, authority: String?) -> String? {
        guard let hostNames, fields[.origin] != nil || fields[.secFetchSite] != nil, let authority else { return nil }
        let name = Self.name(of: authority.lowercased())
        if name == "localhost" || name.hasSuffix(".localhost") || Self.isIPLiteral(name) || hostNames.contains(name) { return nil }
        return "a browser reached this open perfgate by the name \(name.prefix(100)); with no tokens, browsers may use only its IP address, localhost, or a name listed in --allowed-hosts"
    }

    /// The host of `host[:port]` or `[v6]:port`, without the port.
    private static func name(of authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<close])
        }
        if let colon = authority.lastIndex(of: ":"), authority.firstIndex(of: ":") == colon {
            return String(authority[..<colon])
        }
        return authority
    }

    /// An IPv4 dotted quad or an IPv6 address: names that no DNS answer can rebind.
    private static func isIPLiteral(_ name: String) -> Bool {
        if name.contains(":") { return name.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }
    }

    /// nil when the request may go on, else why it may not.
    func refusal(_ fields: HTTPFields, authority: String?) -> String? {
        let origin = fields[.origin]
        if let origin, allowed.contains(Self.normalized(origin)) { return nil }
        let from = origin.map { "a page at \($0.prefix(100))" } ?? "a page on another site"
        let advice = "state-changing requests from web pages are refused unless --allowed-origins lists their origin"
        if let site = fields[.secFetchSite] {
            switch site.lowercased() {
            case "same-origin", "none": return nil
            default: return "\(from) sent this request (Sec-Fetch-Site: \(site.prefix(20))); \(advice)"
            }
        }
        // No Origin: not a browser (curl, the clients, SDKs), or one too old to say.
        guard let origin else { return nil }
        if let authority, Self.host(of: origin) == authority.lowercased() { return nil }
        return "\(from) sent this request to \(authority?.prefix(100) ?? "perfgate"); \(advice)"
    }

    /// The host and port of a web origin: `https://a.example:8443` → `a.example:8443`; nil for
    /// any other (`null`, from sandboxed frames and files).
    private static func host(of origin: String) -> String? {
        let lowered = normalized(origin)
        for scheme in ["http://", "https://"] where lowered.hasPrefix(scheme) {
            return String(lowered.dropFirst(scheme.count))
        }
        return nil
    }

    /// An origin as compared: lower case, without a trailing slash.
    static func normalized(_ origin: String) -> String {
        var text = origin.trimmingCharacters(in: " \t").lowercased()
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// Reads `--allowed-origins`: `scheme://host[:port]` each, comma-separated.
    static func parseList(_ text: String) throws(ConfigurationError) -> [String] {
        let origins = text.split(separator: ",").map { normalized(String($0)) }.filter { !$0.isEmpty }
        for origin in origins {
            guard let host = host(of: origin), !host.isEmpty, !host.contains("/"), !host.contains("*")
            else {
                throw ConfigurationError("must be origins such as https://dash.example.com, comma-separated, with no path or wildcard (got \(origin))")
            }
        }
        return origins
    }
}
