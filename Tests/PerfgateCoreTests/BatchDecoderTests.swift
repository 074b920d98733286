import PerfgateCore
import PerfgateTestSupport
import Testing

@Suite struct BatchDecoderTests {
    static let seedEvent = """
        {"endpoint": "/v1/chat/completions", "provider": "openrouter", "model": "gpt-4o",
         "stages": {"request_parsing": 0.0011, "auth_validation": 0.0009,
                    "request_preparation": 0.0004, "backend_fetch": 1.697,
                    "stream_processing": 1.301},
         "timestamp": "2026-11-29T04:00:00Z"}
        """

    @Test func readsTheSeedEvent() throws {
        let batch = try decodeBatch(Self.seedEvent)
        #expect(batch.total == 1)
        #expect(batch.rejections.isEmpty)
        #expect(
            batch.events == [
                event(stages: [
                    ("request_parsing", 1_100_000), ("auth_validation", 900_000), ("request_preparation", 400_000),
                    ("backend_fetch", 1_697_000_000), ("stream_processing", 1_301_000_000),
                ])
            ]
        )
    }

    @Test func readsEveryLayout() throws {
        let one = #"{"endpoint": "/a", "stages": {"backend_fetch": 1}}"#
        let layouts: [(String, BodyFormat)] = [
            (one, .json),
            ("[\(one), \(one)]", .json),
            (#"{"events": [\#(one), \#(one), \#(one)]}"#, .json),
            ("\(one)\n\(one)\r\n\n  \n\(one)\n", .ndjson),
        ]
        for (body, format) in layouts {
            let batch = try decodeBatch(body, format: format)
            #expect(batch.rejections.isEmpty, "\(body)")
            #expect(batch.events.allSatisfy { $0.endpoint == "/a" && $0.provider == "unknown" && $0.model == "unknown" && $0.timestamp == testNow })
        }
        #expect(try decodeBatch("[\(one), \(one)]").events.count == 2)
        #expect(try decodeBatch(#"{"events": [\#(one), \#(one), \#(one)]}"#).events.count == 3)
        #expect(try decodeBatch("\(one)\n\n\(one)\n", format: .ndjson).events.count == 2)
        #expect(try decodeBatch("[]").total == 0)
        #expect(try decodeBatch(#"{"events": []}"#).total == 0)
        #expect(try decodeBatch("\n\n", format: .ndjson).total == 0)
    }

    @Test func acceptsUnixSecondsAndOffsetTimestamps() throws {
        let batch = try decodeBatch(
            """
            [{"endpoint": "/a", "stages": {"x": 1}, "timestamp": 1795924740.5},
             {"endpoint": "/a", "stages": {"x": 1}, "timestamp": "2026-11-29T04:59:00+01:00"}]
            """
        )
        #expect(batch.events.map(\.timestamp) == [Timestamp(nanoseconds: 1_795_924_740_500_000_000), Timestamp(seconds: 1_795_924_740)])
    }

    /// Each case: an event, the field the error names, and words the message must contain.
    static let invalidEvents: [(String, String, String)] = [
        (#"{"stages": {"backend_fetch": 1}}"#, "endpoint", "is required"),
        (#"{"endpoint": "/a"}"#, "stages", "is required"),
        (#"{"endpoint": "/a", "stages": {}}"#, "stages", "at least one stage"),
        (#"{"endpoint": "", "stages": {"x": 1}}"#, "endpoint", "must not be empty"),
        (#"{"endpoint": 42, "stages": {"x": 1}}"#, "endpoint", "must be a string, got a number"),
        (#"{"endpoint": "/a", "provider": null, "stages": {"x": 1}}"#, "provider", "must be a string, got null"),
        (#"{"endpoint": "/a", "model": "a\nb", "stages": {"x": 1}}"#, "model", "control characters (found U+000A at character 2)"),
        (#"{"endpoint": "/a", "model": "a\u0000", "stages": {"x": 1}}"#, "model", "U+0000"),
        (#"{"endpoint": "/a", "model": "a\u009f", "stages": {"x": 1}}"#, "model", "U+009F"),
        ("{\"endpoint\": \"\(String(repeating: "x", count: 129))\", \"stages\": {\"x\": 1}}", "endpoint", "at most 128 bytes long (got 129)"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": -1}}"#, "stages.backend_fetch", "must not be negative (got -1)"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": NaN}}"#, "stages.backend_fetch", "finite number of seconds (got NaN)"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": Infinity}}"#, "stages.backend_fetch", "got Infinity"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": -Infinity}}"#, "stages.backend_fetch", "got -Infinity"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": 1e999}}"#, "stages.backend_fetch", "at most 86400 seconds"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": 86400.000000001}}"#, "stages.backend_fetch", "at most 86400 seconds"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": 100000}}"#, "stages.backend_fetch", "(got 100000); durations are in seconds, not milliseconds"),
        (#"{"endpoint": "/a", "stages": {"backend_fetch": "1.7"}}"#, "stages.backend_fetch", "must be a number of seconds, got a string"),
        (#"{"endpoint": "/a", "stages": {"Backend": 1}}"#, "stages.Backend", "must match [a-z][a-z0-9_]*"),
        (#"{"endpoint": "/a", "stages": {"1st": 1}}"#, "stages.1st", "must match"),
        (#"{"endpoint": "/a", "stages": {"a-b": 1}}"#, "stages.a-b", "must match"),
        ("{\"endpoint\": \"/a\", \"stages\": {\"\(String(repeating: "s", count: 65))\": 1}}", String("stages.\(String(repeating: "s", count: 65))".prefix(64)) + "…", "longer than 64 bytes"),
        (#"{"endpoint": "/a", "stages": {"x": 1, "x": 2}}"#, "stages.x", "appears more than once"),
        (#"{"endpoint": "/a", "endpoint": "/b", "stages": {"x": 1}}"#, "endpoint", "appears more than once"),
        (#"{"endpoint": "/a", "stages": [1, 2]}"#, "stages", "must be an object of stage name to seconds, got an array"),
        (#"{"endpoint": "/a", "stages": {"x": 1}, "extra": true}"#, "extra", "unknown field"),
        (#"{"endpoint": "/a", "stages": {"x": 1}, "timestamp": "yesterday"}"#, "timestamp", "not an RFC 3339 time"),
        (#"{"endpoint": "/a", "stages": {"x": 1}, "timestamp": "2026-11-29T04:05:01Z"}"#, "timestamp", "in the future"),
        (#"{"endpoint": "/a", "stages": {"x": 1}, "timestamp": "2026-11-28T02:59:59Z"}"#, "timestamp", "older than the retention of 1d1h"),
        (#"{"endpoint": "/a", "stages": {"x": 1}, "timestamp": true}"#, "timestamp", "got a boolean"),
        (#"{"endpoint": "/a", "stages": {"x": 1}, "timestamp": NaN}"#, "timestamp", "finite Unix seconds"),
        (#"[1]"#, "", "must be a JSON object, got a number"),
        (#"["event"]"#, "", "must be a JSON object, got a string"),
    ]

    @Test(arguments: invalidEvents)
    func rejectsAnInvalidEventNamingTheField(body: String, field: String, words: String) throws {
        let batch = try decodeBatch(body)
        #expect(batch.events.isEmpty)
        #expect(batch.rejectedCount == 1)
        let rejection = try #require(batch.rejections.first)
        #expect(rejection.index == 0)
        #expect(rejection.field == field)
        #expect(rejection.message.contains(words), "\(rejection.message)")
        #expect(rejection.message.hasPrefix(field.isEmpty ? "" : field + ": "))
    }

    @Test func appliesTheValidEventsOfAMixedBatch() throws {
        let batch = try decodeBatch(
            """
            [{"endpoint": "/a", "stages": {"x": 1}},
             {"endpoint": "/b", "stages": {"x": -1}},
             {"endpoint": "/c", "stages": {"x": 2}, "oops": 1, "model": 3}]
            """
        )
        #expect(batch.events.map(\.endpoint) == ["/a"])
        #expect(batch.total == 3)
        #expect(batch.rejectedCount == 2)
        #expect(batch.rejections.map(\.index) == [1, 2, 2])
        #expect(batch.rejections.map(\.reason) == [.invalidDuration, .unknownField, .wrongType])
    }

    @Test func countsStagesAgainstTheLimit() throws {
        var limits = IngestLimits()
        limits.maxStagesPerEvent = 2
        let batch = try decodeBatch(#"{"endpoint": "/a", "stages": {"a": 1, "b": 1, "c": 1}}"#, limits: limits)
        #expect(batch.rejections.first?.message == "stages: has 3 stages, more than the limit of 2")
    }

    /// Bodies that cannot be read at all, and words the 400 message must contain.
    static let unreadableBodies: [(String, BodyFormat, String)] = [
        ("", .json, "the body is empty"),
        ("   ", .json, "the body is empty"),
        (#""hello""#, .json, "the body is a string"),
        ("42", .json, "the body is a number"),
        (#"{"endpoint": "/a", "stages": {"x": 1}"#, .json, "line 1, column 38: unexpected end of input, expected ',' or '}'"),
        ("[{\"endpoint\": \"/a\",\n  \"stages\": {\"x\": 1,}}]", .json, "line 2, column 21: expected a member name in double quotes, found '}'"),
        (#"{"endpoint": "/a", "stages": {"x": 1}} {"endpoint": "/b"}"#, .json, "unexpected data after the JSON value (for one event per line use Content-Type: application/x-ndjson)"),
        (#"{"events": {"endpoint": "/a"}}"#, .json, "\"events\" must be an array"),
        (#"{"events": [], "endpoint": "/a"}"#, .json, "an object holding \"events\" must hold nothing else (found 'endpoint')"),
        (#"{"events": [], "events": []}"#, .json, "appears more than once"),
        ("{\"endpoint\": \"/a\", \"stages\": {\"x\": 1}}\n{\"endpoint\": \"/b\"", .ndjson, "line 2, column 18: unexpected end of input"),
        ("{\"endpoint\": \"/a\", \"stages\": {\"x\": 1}} 7\n", .ndjson, "invalid NDJSON at line 1, column 40: unexpected data after the event"),
        ("[1, 01]", .json, "leading zeros"),
        (#"{"endpoint": "/a", "stages": {"x": 1}, "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#, .json, "nesting deeper than 64 levels"),
    ]

    @Test(arguments: unreadableBodies)
    func refusesAnUnreadableBodyWholeSayingWhere(body: String, format: BodyFormat, words: String) {
        #expect {
            _ = try decodeBatch(body, format: format)
        } throws: { error in
            guard let error = error as? BodyError, error.kind == .malformed else { return false }
            if !error.message.contains(words) { Issue.record("\(error.message)") }
            return true
        }
    }

    @Test func refusesTooManyEvents() {
        var limits = IngestLimits()
        limits.maxEventsPerBatch = 2
        let one = #"{"endpoint": "/a", "stages": {"x": 1}}"#
        #expect(throws: BodyError.self) { try decodeBatch("[\(one), \(one), \(one)]", limits: limits) }
        #expect(throws: BodyError.self) { try decodeBatch("\(one)\n\(one)\n\(one)", format: .ndjson, limits: limits) }
        #expect((try? decodeBatch("[\(one), \(one)]", limits: limits))?.events.count == 2)
    }
}
