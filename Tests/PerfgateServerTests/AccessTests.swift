import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PerfgateCore
import PerfgateTestSupport
import Testing

@testable import PerfgateServer

@Suite struct AccessTests {
    static let ingest = "ingest-token-0123456789abcdef"
    static let read = "read-token-0123456789abcdef"
    static let admin = "admin-token-0123456789abcdef"

    func guarded() throws -> Harness {
        var tokens = AccessTokens()
        try tokens.add(Self.ingest, for: .ingest)
        try tokens.add(Self.read, for: .read)
        try tokens.add(Self.admin, for: .admin)
        return Harness { $0.accessTokens = tokens }
    }

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    @Test func eachRouteNeedsItsRoleAndHealthStaysOpen() async throws {
        let harness = try guarded()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let event = eventJSON(stages: ["backend_fetch": 1.5])
            #expect(try await client.postEvents(event, headers: Self.bearer(Self.ingest)).0 == .ok)
            #expect(try await client.postEvents(event, headers: Self.bearer(Self.admin)).0 == .ok)
            #expect(try await client.postEvents(event, headers: Self.bearer(Self.read)).0 == .forbidden)
            for (uri, token, status) in [
                ("/metrics", Self.read, HTTPResponse.Status.ok), ("/metrics", Self.admin, .ok), ("/metrics", Self.ingest, .forbidden),
                ("/v1/trends?metric=backend_ttfb_seconds", Self.read, .ok), ("/v1/trends?metric=backend_ttfb_seconds", Self.ingest, .forbidden),
            ] {
                let answered = try await client.execute(uri: uri, method: .get, headers: Self.bearer(token)) { $0.status }
                #expect(answered == status, "\(uri) with \(token)")
            }
            for uri in ["/healthz", "/readyz"] {
                #expect(try await client.execute(uri: uri, method: .get) { $0.status } == .ok)
            }
            // Routes perfgate does not serve still answer 404, not 401: nothing to protect there.
            #expect(try await client.execute(uri: "/nowhere", method: .get) { $0.status } == .notFound)
            let lines = try await client.execute(uri: "/metrics", method: .get, headers: Self.bearer(Self.read)) {
                String(buffer: $0.body).split(separator: "\n").map(String.init)
            }
            #expect(sample(lines, #"perfgate_requests_rejected_total{reason="forbidden"}"#) == "3")
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#) == "2")
        }
    }

    @Test func aMissingOrUnknownTokenIs401WithAChallenge() async throws {
        let harness = try guarded()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            for (headers, challenge) in [
                (HTTPFields(), #"Bearer realm="perfgate""#),
                // user:pass, as Basic credentials: the password is read as a token, one perfgate does not know.
                ([.authorization: "Basic dXNlcjpwYXNz"], #"Bearer realm="perfgate", error="invalid_token""#),
                (Self.bearer("not-a-token-at-all-0000"), #"Bearer realm="perfgate", error="invalid_token""#),
                (Self.bearer(String(Self.ingest.dropLast())), #"Bearer realm="perfgate", error="invalid_token""#),
            ] as [(HTTPFields, String)] {
                try await client.execute(uri: "/metrics", method: .get, headers: headers) { response in
                    #expect(response.status == .unauthorized)
                    #expect(response.headers[.wwwAuthenticate] == challenge)
                    let answer = try JSONValue.parse(Array(response.body.readableBytesView))
                    #expect(answer["error"]?.stringValue?.isEmpty == false)
                }
            }
            // Nothing was applied by a refused POST.
            #expect(try await client.postEvents(eventJSON(stages: ["backend_fetch": 1])).0 == .unauthorized)
            let lines = try await client.execute(uri: "/metrics", method: .get, headers: Self.bearer(Self.admin)) {
                String(buffer: $0.body).split(separator: "\n").map(String.init)
            }
            #expect(sample(lines, "perfgate_events_accepted_total") == "0")
            #expect(sample(lines, #"perfgate_requests_rejected_total{reason="unauthorized"}"#) == "5")
        }
    }
}

@Suite struct AccessTokensTests {
    @Test func comparesWholeTokensOnly() {
        let a = Array("0123456789abcdef".utf8)
        #expect(AccessTokens.constantTimeEqual(a, a))
        #expect(!AccessTokens.constantTimeEqual(a, Array("0123456789abcdeF".utf8)))
        #expect(!AccessTokens.constantTimeEqual(a, Array("0123456789abcde".utf8)))
        #expect(!AccessTokens.constantTimeEqual(a, Array("0123456789abcdef0".utf8)))
        #expect(!AccessTokens.constantTimeEqual(a, []))
    }

    @Test func readsATokensFileAndNamesTheBadLine() throws {
        let tokens = try AccessTokens.parseFile(
            "# perfgate tokens\ningest 0123456789abcdef0123\n\n  read\tfedcba9876543210fedc  \nadmin aaaaaaaaaaaaaaaaaaaa\n", path: "t"
        )
        #expect(tokens.count(of: .ingest) == 1 && tokens.count(of: .read) == 1 && tokens.count(of: .admin) == 1)
        #expect(tokens.roles(of: "fedcba9876543210fedc") == [.read])
        #expect(tokens.roles(of: "fedcba9876543210fedx").isEmpty)
        for (text, words) in [
            ("ingest 0123456789abcdef0123\nwriter 0123456789abcdef0123", "t, line 2: expected '<role> <token>'"),
            ("read short", "t, line 1: read tokens must be 16 to 512 characters long (got 5)"),
            ("read 0123456789abcdef 0123", "t, line 1: expected"),
        ] {
            #expect {
                _ = try AccessTokens.parseFile(text, path: "t")
            } throws: { error in
                (error as? ConfigurationError)?.description.contains(words) == true
            }
        }
    }

    @Test func settingsTakeTokensFromTheEnvironmentAndAFile() throws {
        let folder = FileManager.default.temporaryDirectory.path + "/perfgate-tokens-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/tokens"
        try "ingest 1111111111111111\nread 2222222222222222\n".write(toFile: file, atomically: true, encoding: .utf8)
        let resolved = try ServeSettings.resolve([
            .environment(["PERFGATE_TOKENS_FILE": file, "PERFGATE_READ_TOKENS": "3333333333333333, 4444444444444444"])
        ])
        let tokens = resolved.configuration.accessTokens
        #expect(tokens.roles(of: "1111111111111111") == [.ingest])
        // The environment's read tokens replace the file's.
        #expect(tokens.roles(of: "2222222222222222").isEmpty)
        #expect(tokens.roles(of: "4444444444444444") == [.read])
        #expect(try ServeSettings.resolve([]).configuration.accessTokens.isOpen)
        #expect {
            _ = try ServeSettings.resolve([.environment(["PERFGATE_ADMIN_TOKENS": "short"])])
        } throws: { error in
            (error as? ConfigurationError)?.description.contains("admin-tokens: admin tokens must be 16 to 512 characters") == true
        }
    }
}

/// `/readyz` is open: it says why it is not ready in words that name nothing of the deployment,
/// and gives the store's own message to a read token only.
@Suite struct ReadinessDetailTests {
    @Test func theStoresMessageGoesToAReadTokenOnly() async throws {
        struct Refused: Error, CustomStringConvertible { var description: String { "unable to open /var/lib/perfgate/perfgate.sqlite" } }
        var tokens = AccessTokens()
        try tokens.add(AccessTests.ingest, for: .ingest)
        try tokens.add(AccessTests.read, for: .read)
        let store = InMemoryRollupStore()
        let harness = Harness { $0.accessTokens = tokens }
        defer { harness.removeFiles() }
        try await harness.run(store: store) { _, client in
            store.failCommits(with: Refused())
            _ = try await client.postEvents(eventJSON(stages: ["backend_fetch": 1]), headers: AccessTests.bearer(AccessTests.ingest))
            for (headers, detailed) in [(HTTPFields(), false), (AccessTests.bearer(AccessTests.ingest), false), (AccessTests.bearer(AccessTests.read), true)] {
                let (status, body) = try await client.execute(uri: "/readyz", method: .get, headers: headers) { ($0.status, String(buffer: $0.body)) }
                #expect(status == .serviceUnavailable)
                #expect(body.contains("/var/lib") == detailed, "\(body)")
                #expect(body.contains("the store failed in the last 10 seconds"))
            }
        }
    }
}

/// State-changing routes refuse what a browser sends from another site, on the router's path and
/// the event loop's alike; other clients, and pages of allowed origins, are served.
@Suite struct CrossOriginTests {
    @Test func crossSiteWritesAreRefusedAndSameOriginOnesServed() async throws {
        let harness = Harness { $0.allowedOrigins = ["https://dash.example.com"] }
        defer { harness.removeFiles() }
        try await harness.run(.live) { _, client in
            let event = eventJSON(stages: ["backend_fetch": 0.5])
            let cases: [(HTTPFields, HTTPResponse.Status)] = [
                ([.secFetchSite: "cross-site"], .forbidden),
                ([.secFetchSite: "same-site"], .forbidden),
                ([.origin: "http://evil.example"], .forbidden),
                ([.origin: "null"], .forbidden),
                ([.origin: "http://evil.example", .secFetchSite: "same-origin"], .ok),
                ([.secFetchSite: "none"], .ok),
                ([.origin: "https://dash.example.com/", .secFetchSite: "cross-site"], .ok),
                ([:], .ok),
            ]
            for (headers, status) in cases {
                #expect(try await client.postEvents(event, headers: headers).0 == status, "\(headers)")
            }
            let refused = try await client.execute(uri: "/v1/series?endpoint=/x", method: .delete, headers: [.secFetchSite: "cross-site"]) { $0.status }
            #expect(refused == .forbidden)
            #expect(sample(try await client.metricLines(), #"perfgate_requests_rejected_total{reason="cross_origin"}"#) == "5")
        }
    }

    @Test func theOriginListIsCheckedAtStartUp() throws {
        #expect(try CrossOriginCheck.parseList("https://a.example, http://b.example:8080/") == ["https://a.example", "http://b.example:8080"])
        for bad in ["a.example", "https://a.example/path", "https://*.example", "ftp://a.example"] {
            #expect(throws: ConfigurationError.self) { try CrossOriginCheck.parseList(bad) }
        }
    }
}
