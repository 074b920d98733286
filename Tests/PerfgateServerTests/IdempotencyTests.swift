import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PerfgateCore
import PerfgateTestSupport
import Testing

@testable import PerfgateServer

@Suite struct IdempotencyTests {
    let count = #"backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"}"#

    func keyed(_ key: String) -> HTTPFields {
        [HTTPField.Name("Idempotency-Key")!: key, .contentType: "application/json"]
    }

    /// Posts and returns the status, the raw answer and whether it was a replay.
    func post(_ client: some TestClientProtocol, _ body: String, key: String) async throws -> (HTTPResponse.Status, String, Bool) {
        try await client.execute(
            uri: "/v1/events", method: .post, headers: keyed(key), body: ByteBuffer(string: body)
        ) { ($0.status, String(buffer: $0.body), $0.headers[HTTPField.Name("Idempotent-Replayed")!] == "true") }
    }

    @Test func aRetryGetsTheFirstAnswerAndAppliesNothing() async throws {
        let harness = Harness { $0.maxSeriesPerMetric = 1 }
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            // The family is limited to one series and holds it: the keyed batch overflows, and its
            // first answer carries a warning that the retry must repeat word for word.
            #expect(try await client.postEvents(eventJSON(stages: ["backend_fetch": 1])).0 == .ok)
            let body = eventJSON(model: "other", stages: ["backend_fetch": 2])
            let first = try await post(client, body, key: "batch-1")
            let retry = try await post(client, body, key: "batch-1")
            #expect(first.0 == .ok && !first.2)
            #expect(first.1.contains("warnings"))
            #expect(retry.0 == .ok && retry.2)
            #expect(retry.1 == first.1)
            let overflow = #"backend_ttfb_seconds_count{provider="__overflow__",model="__overflow__",endpoint="__overflow__"}"#
            let lines = try await client.metricLines()
            #expect(sample(lines, overflow) == "1")
            #expect(sample(lines, "perfgate_idempotent_replays_total") == "1")
            #expect(sample(lines, "perfgate_events_accepted_total") == "2")

            // Another key is another batch.
            #expect(try await post(client, body, key: "batch-2").2 == false)
            #expect(sample(try await client.metricLines(), overflow) == "2")
        }
    }

    @Test func aKeyReusedForAnotherBodyIsRefused() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            #expect(try await post(client, eventJSON(stages: ["backend_fetch": 1]), key: "k").0 == .ok)
            let (status, answer, _) = try await post(client, eventJSON(stages: ["backend_fetch": 2]), key: "k")
            #expect(status == .unprocessableContent)
            #expect(answer.contains("Idempotency-Key k was already used for a different body"))
            let lines = try await client.metricLines()
            #expect(sample(lines, count) == "1")
            #expect(sample(lines, #"perfgate_requests_rejected_total{reason="idempotency_key_reused"}"#) == "1")
        }
    }

    @Test func unusableKeysAreRefusedWithTheReason() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let body = eventJSON(stages: ["backend_fetch": 1])
            for (key, words) in [("", "1 to 255 characters"), (String(repeating: "k", count: 256), "got 256"), ("a b", "character 2 is not"), ("\"\"", "1 to 255")] {
                let (status, answer, _) = try await post(client, body, key: key)
                #expect(status == .badRequest, "\(key)")
                #expect(answer.contains(words), "\(key): \(answer)")
            }
            // The draft standard's quoted form names the same key as the bare one.
            #expect(try await post(client, body, key: "\"abc\"").2 == false)
            #expect(try await post(client, body, key: "abc").2 == true)
        }
    }

    @Test func concurrentRetriesInOneCommitApplyOnce() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(store: store) { components, client in
            // Stall the writer on an unkeyed batch so both retries land in the next group commit.
            store.holdCommits(true)
            async let blocker = client.postEvents(eventJSON(model: "blocker", stages: ["backend_fetch": 1]))
            while components.queue.queuedEvents < 1 { try await Task.sleep(for: .milliseconds(5)) }
            let body = eventJSON(stages: ["backend_fetch": 1])
            async let first = post(client, body, key: "same")
            async let second = post(client, body, key: "same")
            while components.queue.queuedEvents < 3 { try await Task.sleep(for: .milliseconds(5)) }
            store.holdCommits(false)
            let answers = try await [first, second]
            #expect(try await blocker.0 == .ok)
            #expect(answers.map(\.0) == [.ok, .ok])
            #expect(answers.filter(\.2).count == 1)
            #expect(answers[0].1 == answers[1].1)
            #expect(sample(try await client.metricLines(), count) == "1")
        }
    }

    @Test func aFailedCommitKeepsNoAnswerSoTheRetryApplies() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(store: store) { _, client in
            struct DiskFull: Error {}
            let body = eventJSON(stages: ["backend_fetch": 1])
            store.failCommits(with: DiskFull())
            #expect(try await post(client, body, key: "r").0 == .serviceUnavailable)
            store.failCommits(with: nil)
            let retry = try await post(client, body, key: "r")
            #expect(retry.0 == .ok && !retry.2)
            #expect(sample(try await client.metricLines(), count) == "1")
        }
    }

    @Test func aCommitWhoseReplyWasLostSaysSoAndTheResendWithItsKeyAppliesOnce() async throws {
        let store = InMemoryRollupStore()
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run(store: store) { components, client in
            let body = eventJSON(stages: ["backend_fetch": 1])
            store.loseCommitReplies(true)
            let lost = try await client.execute(uri: "/v1/events", method: .post, headers: keyed("lost"), body: ByteBuffer(string: body)) { $0 }
            #expect(lost.status == .serviceUnavailable)
            #expect(lost.headers[.retryAfter] == "5")
            let message = String(buffer: lost.body)
            #expect(message.contains("may or may not have been applied") && message.contains("same Idempotency-Key"), "\(message)")
            #expect(!message.contains("nothing was applied"))
            #expect(try await client.getJSON("/readyz").0 == .serviceUnavailable)

            store.loseCommitReplies(false)
            // It was applied: the resend gets the answer kept with it and applies nothing more.
            let resend = try await post(client, body, key: "lost")
            #expect(resend.0 == .ok && resend.2)
            // Once the store answers, the replica reads its counts back: /metrics shows what was applied.
            await components.queue.settle()
            #expect(sample(try await client.metricLines(), count) == "1")
            #expect(try await client.postEvents(body).0 == .ok)
            #expect(sample(try await client.metricLines(), count) == "2")
        }
    }

    @Test func answersExpireAfterTheTTL() async throws {
        let harness = Harness { $0.idempotencyTTLSeconds = 3600 }
        defer { harness.removeFiles() }
        try await harness.run { components, client in
            let body = eventJSON(stages: ["backend_fetch": 1])
            #expect(try await post(client, body, key: "old").2 == false)
            harness.clock.advance(seconds: 3599)
            #expect(try await post(client, body, key: "old").2 == true)
            harness.clock.advance(seconds: 2)
            // Past the TTL the key is free again; the prune then removes nothing still valid.
            #expect(try await post(client, body.replacingOccurrences(of: "1}", with: "2}"), key: "old").0 == .ok)
            let report = try await components.queue.prune(before: Minute(index: 0))
            #expect(report.answersForgotten == 0)
            harness.clock.advance(seconds: 3601)
            #expect(try await components.queue.prune(before: Minute(index: 0)).answersForgotten == 1)
        }
    }
}
