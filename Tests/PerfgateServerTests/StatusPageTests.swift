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

/// Label text is never markup on the page: escaped per Unicode scalar, isolated for bidi, and the
/// page runs only its own script.
@Suite struct StatusPageEscapingTests {
    @Test(arguments: [
        ("x\"\u{338} autofocus onfocus=alert(1) z", "x&quot;\u{338} autofocus onfocus=alert(1) z"),
        ("<\u{338}script>", "&lt;\u{338}script&gt;"),
        ("a'\u{301}&\u{20D2}b", "a&#39;\u{301}&amp;\u{20D2}b"),
        ("`${x}`", "&#96;${x}&#96;"),
        ("\u{202E}evil\u{2066}", "\u{202E}evil\u{2066}"),
        ("plain", "plain"),
    ])
    func everyScalarThatEndsTextOrAnAttributeIsAReference(label: String, escaped: String) {
        #expect(StatusPageHTML.escape(label) == escaped)
        #expect(StatusPageHTML.label(label) == "<bdi>\(escaped)</bdi>")
        // What the page carries holds no raw quote, apostrophe, backtick or angle bracket.
        #expect(!StatusPageHTML.escape(label).unicodeScalars.contains { "\"'`<>".unicodeScalars.contains($0) })
    }

    @Test func thePageRunsOnlyItsOwnScriptByANonceNewEachTime() async throws {
        let harness = Harness()
        defer { harness.removeFiles() }
        try await harness.run { _, client in
            try await client.postEvents(eventJSON(endpoint: "/x\\\"\u{338} onfocus=alert(1)", stages: ["backend_fetch": 0.5]))
            let (first, second) = try await (
                client.execute(uri: "/", method: .get) { ($0.headers[.contentSecurityPolicy] ?? "", String(buffer: $0.body)) },
                client.execute(uri: "/", method: .get) { $0.headers[.contentSecurityPolicy] ?? "" }
            )
            let nonce = try #require(first.0.firstMatch(of: /script-src 'nonce-([0-9a-f]{32})'/)?.1)
            let scripts = first.0.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("script-src") || $0.hasPrefix("default-src") }
            #expect(scripts.count == 2 && !scripts.contains { $0.contains("unsafe") }, "\(first.0)")
            #expect(first.1.contains("<script nonce=\"\(nonce)\">"))
            #expect(!second.contains(String(nonce)))
            #expect(first.1.contains("data-endpoint=\"/x&quot;\u{338} onfocus=alert(1)\""))
        }
    }
}
