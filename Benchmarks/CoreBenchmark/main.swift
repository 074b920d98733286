// Micro benchmarks of the ingest and scrape hot paths, one core, no I/O:
//   parse: a 1,000-event JSON array (the body bench/wrk/events.lua sends) read by Foundation's
//          JSONDecoder into Codable structs (the baseline), by perfgate's BatchDecoder, and by
//          BatchDecoder plus aggregation into minute rollups (what a request costs before the commit);
//   exposition: rendering the /metrics page of 10,000 histogram series from a snapshot.
// Each ingest figure comes with the heap allocations it makes (counted by AllocationCounter in a
// separate, untimed pass), so that a change which allocates more per event shows here first.
//
// Usage: core-benchmark [--smoke] [--only parse|one-event|exposition]
import AllocationCounter
import Foundation
import NIOCore
import PerfgateCore

let smoke = CommandLine.arguments.contains("--smoke")
let only = CommandLine.arguments.firstIndex(of: "--only").map { CommandLine.arguments[$0 + 1] }
func runs(_ section: String) -> Bool { only == nil || only == section }

/// The same events as bench/wrk/events.lua: 4 providers x 5 models x 2 endpoints, five stages.
func body(events: Int) -> [UInt8] {
    let providers = ["openrouter", "openai", "anthropic", "bedrock"]
    let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b", "mistral-large"]
    let endpoints = ["/v1/chat/completions", "/v1/completions"]
    let items = (0..<events).map { i in
        let ttfb = 0.2 + Double(i * 7919 % 3000) / 1000
        let stream = 0.5 + Double(i * 104_729 % 4000) / 1000
        return String(
            format: #"{"endpoint": "%@", "provider": "%@", "model": "%@", "stages": {"request_parsing": 0.%04d, "auth_validation": 0.%04d, "request_preparation": 0.%04d, "backend_fetch": %.3f, "stream_processing": %.3f}}"#,
            endpoints[(i / 20) % 2], providers[i % 4], models[(i / 4) % 5], 5 + i % 20, 3 + i % 11, 2 + i % 7, ttfb, stream
        )
    }
    return Array(("[" + items.joined(separator: ",") + "]").utf8)
}

struct CodableEvent: Decodable {
    var endpoint: String
    var provider: String?
    var model: String?
    var stages: [String: Double]
    var timestamp: String?
}

/// Runs `body` `rounds` times after one warm-up and returns the median seconds per round
/// (the median, not the best: the machines are shared and the best round flatters).
func median(rounds: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    for _ in 0..<rounds {
        let start = ContinuousClock.now
        try body()
        let elapsed = start.duration(to: .now).components
        times.append(Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
    }
    return times.sorted()[times.count / 2]
}

/// Heap allocations and bytes one run of `body` makes, after a warm-up run.
func allocations(_ body: () throws -> Void) rethrows -> (count: Double, bytes: Double) {
    try body()
    let before = allocation_counter_read()
    allocation_counter_start()
    try body()
    allocation_counter_stop()
    let after = allocation_counter_read()
    return (Double(after.allocations - before.allocations), Double(after.bytes - before.bytes))
}

let eventsPerBody = 1000
let rounds = smoke ? 2 : 40
let bytes = body(events: eventsPerBody)
let rules = EventRules(limits: IngestLimits(), now: SystemWallClock().now())
var sink = 0

/// The body decoded into event columns; the number of events accepted.
@MainActor func decode(_ bytes: [UInt8]) throws -> Int {
    try BatchDecoder(rules: rules).decode(bytes, format: .json).acceptedCount
}

/// A batch kept across bodies, as a connection's event-loop handler keeps one.
var reused = DecodedBatch()

/// The body decoded into the kept batch, whose storage its earlier bodies left; the number of events accepted.
@MainActor func decodeReusing(_ bytes: [UInt8]) throws -> Int {
    try bytes.withUnsafeBufferPointer { try BatchDecoder(rules: rules).decode($0, format: .json, into: &reused) }
    return reused.acceptedCount
}

/// What a small request costs the event-loop path before its commit: decoded into the kept batch,
/// then aggregated (into single observations, for a body this small).
@MainActor func decodeReusingAndAggregate(_ bytes: [UInt8]) throws -> Int {
    _ = try decodeReusing(bytes)
    var delta = RollupDelta()
    delta.add(reused.columns, layouts: .seed)
    return delta.observations.count + delta.entries.count
}

/// What a request costs the core before its commit: the body decoded and aggregated into rollups.
@MainActor func decodeAndAggregate(_ bytes: [UInt8]) throws -> Int {
    let batch = try BatchDecoder(rules: rules).decode(bytes, format: .json)
    var delta = RollupDelta()
    delta.add(batch.columns, layouts: .seed)
    return delta.entries.count
}

func line(_ name: String, _ seconds: Double, baseline: Double) -> String {
    let padded = name.padding(toLength: 42, withPad: " ", startingAt: 0)
    let figures = String(
        format: "%10.0f events/s  %6.0f ns/event  %5.2fx JSONDecoder",
        Double(eventsPerBody) / seconds, seconds / Double(eventsPerBody) * 1e9, baseline / seconds
    )
    return "  " + padded + figures
}

if runs("parse") {
    let data = Data(bytes)
    let foundation = try median(rounds: rounds) {
        sink &+= try JSONDecoder().decode([CodableEvent].self, from: data).count
    }
    let decodeOnly = try median(rounds: rounds) {
        sink &+= try decode(bytes)
    }
    let ingest = try median(rounds: rounds) { sink &+= try decodeAndAggregate(bytes) }
    print("core-benchmark parse: \(eventsPerBody)-event JSON array, \(bytes.count) bytes, median of \(rounds), one core")
    print(line("Foundation JSONDecoder (baseline)", foundation, baseline: foundation))
    print(line("BatchDecoder", decodeOnly, baseline: foundation))
    print(line("BatchDecoder + aggregation into rollups", ingest, baseline: foundation))
    let decodeAllocations = try allocations { sink &+= try decode(bytes) }
    let ingestAllocations = try allocations { sink &+= try decodeAndAggregate(bytes) }
    for (name, counted) in [("BatchDecoder", decodeAllocations), ("BatchDecoder + aggregation into rollups", ingestAllocations)] {
        print(
            "  " + "allocations, \(name)".padding(toLength: 54, withPad: " ", startingAt: 0)
                + String(format: "%6.0f per body  %6.2f per event  %8.0f bytes per body", counted.count, counted.count / Double(eventsPerBody), counted.bytes)
        )
    }
}

// A one-event body, as most applications send: the fixed cost of a request in the core.
if runs("one-event") {
    let single = Array(body(events: 1).dropFirst().dropLast())
    let singleRounds = smoke ? 100 : 20_000
    let sections: [(String, @MainActor ([UInt8]) throws -> Int)] = [
        ("BatchDecoder", decode), ("BatchDecoder + aggregation", decodeAndAggregate),
        ("BatchDecoder into a kept batch", decodeReusing), ("kept batch + aggregation (the event-loop path)", decodeReusingAndAggregate),
    ]
    for (name, work) in sections {
        let oneEvent = try median(rounds: 5) {
            for _ in 0..<singleRounds { sink &+= try work(single) }
        } / Double(singleRounds)
        let counted = try allocations { sink &+= try work(single) }
        print(String(format: "  one-event body, %@: %.1f µs per request", name, oneEvent * 1e6))
        print(String(format: "  allocations, one-event body, %@: %.0f per request, %.0f bytes", name, counted.count, counted.bytes))
    }
}

// Exposition: 10,000 series of backend_ttfb_seconds with realistic counts.
if runs("exposition") {
    let seriesCount = smoke ? 1000 : 10_000
    let layout = BucketLayouts.seed[.backendTTFB]
    let samples = (0..<seriesCount).map { i -> HistogramSample in
        let key = SeriesKey(.backendTTFB, ["provider-\(i % 25)", "model-\(i / 25)", "/v1/route-\(i % 10)"])
        var counts = HistogramCounts(bucketCount: layout.bucketCount)
        for n in 0..<50 {
            let nanoseconds = Int64((i * 7919 + n * 104_729) % 12_000) * 1_000_000
            counts.observe(nanoseconds: nanoseconds, bucket: layout.bucketIndex(for: nanoseconds))
        }
        return HistogramSample(key: key, labels: RenderedLabels(key), counts: counts)
    }.sorted { $0.key < $1.key }  // as the live state keeps them
    let snapshot = SeedMetricsSnapshot(histograms: [.backendTTFB: samples], shares: [], shareWindowMinutes: 5, layouts: .seed, inOrder: true)
    var pageBytes = 0
    let render = median(rounds: smoke ? 2 : 20) {
        let page = ExpositionPage.render(snapshot.families(), capacity: snapshot.estimatedBytes)
        pageBytes = page.readableBytes
        sink &+= page.readableBytes
    }
    print("core-benchmark exposition: \(seriesCount) histogram series, median of \(smoke ? 2 : 20), one core")
    print(String(format: "  render /metrics page: %.2f ms, %d bytes, %.0f series/ms", render * 1e3, pageBytes, Double(seriesCount) / (render * 1e3)))
}
precondition(sink > 0)
