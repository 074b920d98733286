import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOPosix
import PerfgateCore
import PerfgateTestSupport
import Testing

@testable import PerfgateServer

/// `POST /v1/events` is answered on the event loop (EventIngestHandler) when it can be, and by the
/// router otherwise. Whichever answers, the client must not be able to tell: the same requests,
/// in the same order, get the same answers and leave the same counts over a real socket (both
/// paths) as through the router alone.
@Suite struct EventIngestHandlerTests {
    static let ingest = "ingest-token-0123456789abcdef"
    static let read = "read-token-0123456789abcdef"
    static let admin = "admin-token-0123456789abcdef"

    struct Probe: Sendable {
        let method: HTTPRequest.Method
        let uri: String
        let headers: HTTPFields
        let body: [UInt8]
    }

    struct Answer: Equatable, Sendable {
        let status: HTTPResponse.Status
        /// The headers a client reads; `Date` and `Server` are checked apart.
        let headers: [String: String]
        let body: String
    }

    func harness() throws -> Harness {
        var tokens = AccessTokens()
        try tokens.add(Self.ingest, for: .ingest)
        try tokens.add(Self.read, for: .read)
        try tokens.add(Self.admin, for: .admin)
        return Harness {
            $0.accessTokens = tokens
            $0.limits.maxEventsPerBatch = 10
            $0.maxSeriesPerMetric = 12
        }
    }

    /// Requests drawn from every choice the handler makes: spellings of the path, methods,
    /// tokens, media types, encodings, keys, and bodies valid, partly valid, invalid and malformed.
    static func probes(count: Int, seed: UInt64) -> [Probe] {
        var rng = SplitMix(seed: seed)
        func pick<T>(_ choices: [T]) -> T { choices[rng.next(below: choices.count)] }
        func chance(_ percent: Int) -> Bool { rng.next(below: 100) < percent }

        func event() -> String {
            var stages: [String: String] = [:]
            for stage in StageName.seed.sorted() where chance(60) {
                // Durations of random magnitude and digits, in seconds.
                let value = Double(rng.next(below: 1_000_000_000)) / pow(10, Double(3 + rng.next(below: 7)))
                stages[stage] = String(value)
            }
            if chance(8) { stages[StageName.backendFetch] = "-0.5" }
            if chance(5) { stages["not_a_stage"] = "1" }
            var fields = [
                #""endpoint": "\#(pick(["/v1/chat/completions", "/v1/embeddings", "/search"]))""#,
                #""provider": "\#(pick(["openrouter", "anthropic", "local"]))""#,
                #""stages": {\#(stages.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", "))}"#,
            ]
            if !chance(5) { fields.append(#""model": "m-\#(rng.next(below: 20))""#) }
            if chance(10) { fields.append(#""timestamp": "\#(RFC3339.format(Timestamp(seconds: testNow.seconds - Int64(rng.next(below: 4 * 86_400)))))""#) }
            return "{" + fields.joined(separator: ", ") + "}"
        }

        var probes: [Probe] = []
        for _ in 0..<count {
            let ndjson = chance(15)
            var headers: HTTPFields = [:]
            switch rng.next(below: 10) {
            case 0: break
            case 1: headers[.authorization] = "Bearer \(read)"
            case 2: headers[.authorization] = "Bearer not-a-token"
            case 3: headers[.authorization] = "bearer \(admin)"
            case 4: headers[.authorization] = "Basic " + Data("anyone:\(ingest)".utf8).base64EncodedString()
            default: headers[.authorization] = "Bearer \(ingest)"
            }
            if let type = ndjson
                ? pick(["application/x-ndjson", "application/jsonl"])
                : pick([nil, "application/json", "application/json; charset=utf-8", "Application/JSON", "text/plain"] as [String?])
            {
                headers[.contentType] = type
            }
            if chance(8) { headers[.contentEncoding] = pick(["identity", "br", "gzip"]) }
            if chance(12) { headers[.idempotencyKey] = "key-\(rng.next(below: 15))" }
            // What browsers add: same-origin requests pass, cross-site ones are refused, on either path.
            if chance(10) { headers[.secFetchSite] = pick(["cross-site", "same-site", "same-origin", "none"]) }
            if chance(10) { headers[.origin] = pick(["http://evil.example", "null", "http://localhost"]) }

            let events = (0..<pick([1, 1, 1, 2, 3, 6, 11])).map { _ in event() }
            let body: String =
                switch rng.next(below: 20) {
                case 0: "{"
                case 1: ""
                case 2: "[]"
                case 3: "null"
                default: ndjson ? events.joined(separator: "\n") : (events.count == 1 && chance(50) ? events[0] : "[" + events.joined(separator: ",") + "]")
                }
            let uri = chance(80) ? "/v1/events" : pick(["/v1/events/", "//v1/events", "/v1/events?x=1", "/v1/Events", "/v1/events/x", "/v1/events%2F"])
            let method: HTTPRequest.Method = chance(95) ? .post : pick([.put, .get, .patch])
            probes.append(Probe(method: method, uri: uri, headers: headers, body: Array(body.utf8)))
        }
        return probes
    }

    static func answers(_ probes: [Probe], client: any TestClientProtocol) async throws -> [Answer] {
        var answers: [Answer] = []
        for probe in probes {
            let answer = try await client.execute(uri: probe.uri, method: probe.method, headers: probe.headers, body: ByteBuffer(bytes: probe.body)) {
                response in
                var headers: [String: String] = [:]
                for name in [HTTPField.Name.contentType, .wwwAuthenticate, .retryAfter, .allow, .idempotentReplayed] {
                    if let value = response.headers[name] { headers[name.canonicalName] = value }
                }
                return Answer(status: response.status, headers: headers, body: String(buffer: response.body))
            }
            answers.append(answer)
        }
        return answers
    }

    /// What the requests left: the seed's families and perfgate's own counts of what it took in.
    static func counts(_ client: any TestClientProtocol) async throws -> [String] {
        let lines = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(read)"]) { response in
            String(buffer: response.body).split(separator: "\n").map(String.init)
        }
        return seedLines(lines) + lines.filter { $0.hasPrefix("perfgate_events_") || $0.hasPrefix("perfgate_requests_rejected_total") }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func everyRequestIsAnsweredAsTheRouterAnswersIt(seed: UInt64) async throws {
        let probes = Self.probes(count: 300, seed: seed)
        let routed = try harness()
        defer { routed.removeFiles() }
        let (expected, expectedCounts) = try await routed.run(.router) { _, client in
            (try await Self.answers(probes, client: client), try await Self.counts(client))
        }
        let served = try harness()
        defer { served.removeFiles() }
        let (answers, counts, answeredOnTheLoop) = try await served.run(.live) { components, client in
            (try await Self.answers(probes, client: client), try await Self.counts(client), components.eventLoopIngest.answered.count)
        }
        for (index, (probe, (answer, wanted))) in zip(probes, zip(answers, expected)).enumerated() where answer != wanted {
            Issue.record("request \(index) \(probe.method) \(probe.uri) \(probe.headers) \(String(decoding: probe.body, as: UTF8.self)): got \(answer), the router answers \(wanted)")
        }
        #expect(counts == expectedCounts)
        // About a quarter of the requests are plain and valid: the event loop must have answered them.
        #expect(answeredOnTheLoop > probes.count / 8, "answered on the event loop: \(answeredOnTheLoop) of \(probes.count)")
        #expect(expected.contains { $0.status == .ok } && expected.contains { $0.status == .unprocessableContent })
    }

    /// An answer from the event loop carries the headers the router's do: a current `Date` in
    /// HTTP's form and perfgate's `Server`.
    @Test func answersFromTheEventLoopCarryDateAndServer() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(.live) { components, client in
            let (head, routerHead) = try await (
                client.execute(
                    uri: "/v1/events", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: eventJSON(stages: ["backend_fetch": 0.25]))
                ) { $0.headers },
                client.execute(uri: "/healthz", method: .get) { $0.headers }
            )
            #expect(components.eventLoopIngest.answered.count == 1)
            #expect(head[.server] == routerHead[.server])
            let date = try #require(head[.date].flatMap(HTTPDateTests.imfFixdate().date(from:)), "Date: \(head[.date] ?? "none")")
            #expect(abs(date.timeIntervalSinceNow) < 5)
            #expect(head[.date]?.count == routerHead[.date]?.count)
        }
    }

    /// Pipelined requests (RFC 9112, 9.3) behind one that is committing wait for its answer,
    /// even those the router answers at once: answers leave in the order requests came.
    @Test func requestsPipelinedBehindACommitAreAnsweredAfterIt() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(store: store, .live) { components, client in
            store.holdCommits(true)
            let event = eventJSON(stages: ["backend_fetch": 0.375])
            // Three requests in one write, so they arrive together, behind a commit that waits.
            let requests = [
                "POST /v1/events HTTP/1.1\r\nHost: perfgate\r\nContent-Type: application/json\r\nContent-Length: \(event.utf8.count)\r\n\r\n\(event)",
                "GET /healthz HTTP/1.1\r\nHost: perfgate\r\n\r\n",
                "POST /v1/events HTTP/1.1\r\nHost: perfgate\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{",
            ].joined()
            let channel = try await rawConnection(port: try #require(client.port))
            let received = try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: requests))
                async let release: Void = {
                    try await Task.sleep(for: .milliseconds(300))
                    store.holdCommits(false)
                }()
                var text = ""
                for try await chunk in inbound {
                    text += String(buffer: chunk)
                    if text.components(separatedBy: "HTTP/1.1 ").count > 3, text.hasSuffix("}") { break }
                }
                try await release
                return text
            }
            let statuses = received.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "200", "400"], "\(received)")
            #expect(received.components(separatedBy: "HTTP/1.1 ").dropFirst().first?.contains(#""accepted":1"#) == true, "\(received)")
            #expect(components.eventLoopIngest.answered.count == 1)
        }
    }

    /// The write queue's refusals come from the event loop as from the router: 503, Retry-After,
    /// the same reason, and nothing applied.
    @Test func aClosedQueueRefusesOnTheEventLoopAsTheRouterDoes() async throws {
        let probe = Probe(method: .post, uri: "/v1/events", headers: [.contentType: "application/json"], body: Array(eventJSON(stages: ["backend_fetch": 0.125]).utf8))
        let routed = Harness()
        defer { routed.removeFiles() }
        let expected = try await routed.run(.router) { components, client in
            await components.queue.shutdown()
            return try await Self.answers([probe], client: client)
        }
        let served = Harness()
        defer { served.removeFiles() }
        let (answers, lines) = try await served.run(.live) { components, client in
            await components.queue.shutdown()
            return (try await Self.answers([probe], client: client), try await client.metricLines())
        }
        #expect(answers == expected)
        #expect(answers.first?.status == .serviceUnavailable)
        #expect(sample(lines, #"perfgate_requests_rejected_total{reason="overloaded"}"#) == "1")
        #expect(seedLines(lines).allSatisfy { !$0.contains("backend_ttfb_seconds_count{") })
    }
}

/// A TCP connection of its own to perfgate on loopback, written and read as bytes.
func rawConnection(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
}

/// Requests answered on the event loop share commits: what each is told of its own observations
/// must be true of it, whichever others it was committed with.
@Suite struct SharedCommitTests {
    /// POSTs `body` on a connection of its own and returns the answer's status line and body.
    static func post(_ body: String, port: Int) async throws -> (status: String, body: String) {
        try await rawConnection(port: port).executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "POST /v1/events HTTP/1.1\r\nHost: perfgate\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"))
            var text = ""
            for try await chunk in inbound {
                text += String(buffer: chunk)
                guard let split = text.range(of: "\r\n\r\n"),
                    let length = text[..<split.lowerBound].split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") })
                        .flatMap({ Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }),
                    text.utf8.count - text[..<split.upperBound].utf8.count >= length
                else { continue }
                return (String(text.prefix(12)), String(text[split.upperBound...]))
            }
            throw CancellationError()
        }
    }

    /// Seventeen requests, each naming a series of its own, all but the first in one commit, past
    /// a limit of six series: each request is told that its observation overflowed exactly when
    /// its series is not on `/metrics`, and the overflow series holds what the warnings add up to.
    @Test func eachRequestIsToldWhetherItsOwnObservationsOverflowed() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness { $0.maxSeriesPerMetric = 6 }
        defer { harness.removeFiles() }
        try await harness.run(store: store, .live) { components, client in
            let port = try #require(client.port)
            var random = SplitMix(seed: 17)
            let models = (0..<17).map { "model-\($0)" }
            let bodies = models.map { eventJSON(model: $0, stages: ["backend_fetch": Double(1 + random.next(below: 4_000_000)) / 1_000_000]) }
            store.holdCommits(true)
            async let first = Self.post(bodies[0], port: port)
            while store.heldCommits < 1 { try await Task.sleep(for: .milliseconds(5)) }
            let rest = try await withThrowingTaskGroup(of: (Int, (status: String, body: String)).self) { group in
                for index in 1..<bodies.count { group.addTask { (index, try await Self.post(bodies[index], port: port)) } }
                while components.queue.queuedEvents < bodies.count { try await Task.sleep(for: .milliseconds(5)) }
                store.holdCommits(false)
                return try await group.reduce(into: [(Int, (status: String, body: String))]()) { $0.append($1) }
            }
            let answers = [try await first] + rest.sorted { $0.0 < $1.0 }.map(\.1)
            #expect(answers.allSatisfy { $0.status == "HTTP/1.1 200" }, "\(answers)")
            #expect(components.eventLoopIngest.answered.count == bodies.count)
            let lines = try await client.metricLines()
            #expect(sample(lines, "perfgate_commits_total") == "2")
            let warning = "backend_ttfb_seconds holds its limit of 6 series; 1 observations were counted under the __overflow__ series"
            var overflowed = 0
            for (model, answer) in zip(models, answers) {
                let own = sample(lines, #"backend_ttfb_seconds_count{provider="openrouter",model="\#(model)",endpoint="/v1/chat/completions"}"#)
                let told = answer.body.contains(warning)
                #expect(told == (own == nil), "\(model): series \(own ?? "absent"), answer \(answer.body)")
                if told { overflowed += 1 }
            }
            #expect(overflowed == bodies.count - 6)
            #expect(sample(lines, #"backend_ttfb_seconds_count{provider="__overflow__",model="__overflow__",endpoint="__overflow__"}"#) == String(overflowed))
            #expect(sample(lines, #"perfgate_series_overflow_total{metric="backend_ttfb_seconds"}"#) == String(overflowed))
        }
    }
}

/// IMF-fixdate, against Foundation's formatter at random instants.
@Suite struct HTTPDateTests {
    /// Foundation's reading and writing of IMF-fixdate.
    static func imfFixdate() -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter
    }

    @Test func formatsAsFoundationDoes() {
        let formatter = Self.imfFixdate()
        var rng = SplitMix(seed: 7)
        for _ in 0..<2000 {
            // 1900 to 2200, fractions included.
            let nanoseconds = (Int64(rng.next(below: 9_467_280_000)) - 2_208_988_800) * 1_000_000_000 + Int64(rng.next(below: 1_000_000_000))
            let timestamp = Timestamp(nanoseconds: nanoseconds)
            let date = Date(timeIntervalSince1970: TimeInterval(timestamp.seconds))
            #expect(HTTPDate.format(timestamp) == formatter.string(from: date), "\(nanoseconds)")
        }
    }
}
