import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PerfgateCore
import Testing

@testable import PerfgateServer

@Suite struct StatusPageTests {
    @Test func aLongTableListsTheDegradingAndTheBusiestAndSaysWhatItLeftOut() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            let hourAgo = testNow.adding(nanoseconds: -3600 * 1_000_000_000)
            let before = (0..<10).map { _ in eventJSON(provider: "zz", model: "slipping", stages: ["backend_fetch": 0.1], timestamp: hourAgo) }
            let slipping = (0..<10).map { _ in eventJSON(provider: "zz", model: "slipping", stages: ["backend_fetch": 3]) }
            let quiet = (0..<60).map { eventJSON(provider: "p\($0)", model: "m", stages: ["backend_fetch": 0.2]) }
            let busy = (0..<5).map { _ in eventJSON(provider: "p59", model: "m", stages: ["backend_fetch": 0.2]) }
            try await client.postEvents("[" + (before + slipping + quiet + busy).joined(separator: ",") + "]")
            let html = try await client.execute(uri: "/?window=5m&fragment=1", method: .get) { String(buffer: $0.body) }
            let rows = html.components(separatedBy: "<tr data-provider=").count - 1
            #expect(rows == StatusReport.maxListedPairs)
            #expect(html.contains(#"<tr data-provider="zz" data-model="slipping" class="degrading">"#))
            #expect(html.contains(#"<tr data-provider="p59" data-model="m""#))
            #expect(html.contains("11 quieter pairs are not listed"))
            // The top 10 still ranks every pair, listed or not.
            #expect(html.contains(#"<li data-provider="zz" data-model="slipping">"#))
        }
    }
}
