// Decoding an OTLP trace export of 512 spans: perfgate's purpose-built decoder against code that
// swift-protobuf generated from otlp_trace.proto (the same messages and fields), each turning
// the body into the spans perfgate assembles. One core, no I/O; medians of rounds.
//
// Usage: otlp-decode-benchmark [--smoke]
import Foundation
import PerfgateCore
import SwiftProtobuf

let smoke = CommandLine.arguments.contains("--smoke")
let rounds = smoke ? 3 : 15
let decodesPerRound = smoke ? 5 : 200

/// An export as an SDK writes it: 64 traces of 8 spans (a root, the five seed stages, two other
/// spans), with the attributes instrumentations add besides the ones perfgate reads.
func export() -> [UInt8] {
    var request = Perfgate_Bench_Otlp_ExportTraceServiceRequest()
    var resource = Perfgate_Bench_Otlp_ResourceSpans()
    resource.resource.attributes = [("service.name", "gateway"), ("telemetry.sdk.language", "python"), ("telemetry.sdk.version", "1.38.0")].map(keyValue)
    var scope = Perfgate_Bench_Otlp_ScopeSpans()
    let start: UInt64 = 1_764_000_000_000_000_000
    for trace in 0..<64 {
        let traceID = Data((0..<16).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ trace) })
        let names = ["POST /v1/chat/completions", "request_parsing", "auth_validation", "request_preparation", "backend_fetch", "stream_processing", "SELECT", "redis GET"]
        for (index, name) in names.enumerated() {
            var span = Perfgate_Bench_Otlp_Span()
            span.traceID = traceID
            span.spanID = Data((0..<8).map { UInt8(truncatingIfNeeded: $0 == 7 ? index + 1 : trace) })
            if index > 0 { span.parentSpanID = Data((0..<8).map { UInt8(truncatingIfNeeded: $0 == 7 ? 1 : trace) }) }
            span.name = name
            span.startTimeUnixNano = start
            span.endTimeUnixNano = start + UInt64(1_000_000 * (index + trace + 1))
            var attributes = [("http.request.method", "POST"), ("server.address", "api.example.com"), ("url.path", "/v1/chat/completions"), ("network.protocol.version", "1.1")]
            if index == 0 { attributes.append(("http.route", "/v1/chat/completions")) }
            if index == 4 { attributes += [("gen_ai.provider.name", "openrouter"), ("gen_ai.request.model", "gpt-4o")] }
            span.attributes = attributes.map(keyValue)
            scope.spans.append(span)
        }
    }
    resource.scopeSpans = [scope]
    request.resourceSpans = [resource]
    return Array(try! request.serializedBytes() as [UInt8])
}

func keyValue(_ pair: (String, String)) -> Perfgate_Bench_Otlp_KeyValue {
    var keyValue = Perfgate_Bench_Otlp_KeyValue()
    keyValue.key = pair.0
    keyValue.value.stringValue = pair.1
    return keyValue
}

/// The generated decoder, then the same spans perfgate's decoder gives.
func generated(_ body: [UInt8]) throws -> [OTLPSpan] {
    let request = try Perfgate_Bench_Otlp_ExportTraceServiceRequest(serializedBytes: body)
    var spans: [OTLPSpan] = []
    for resource in request.resourceSpans {
        for scope in resource.scopeSpans {
            for message in scope.spans where message.traceID.count == 16 && message.spanID.count == 8 {
                let high = message.traceID.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let low = message.traceID.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                var span = OTLPSpan(traceID: TraceID(high: high, low: low), spanID: message.spanID.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                span.parentSpanID = message.parentSpanID.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                span.parentIsRemote = message.flags & 0x300 == 0x300
                span.name = StageName.seed.contains(message.name) ? message.name : ""
                span.startNanoseconds = message.startTimeUnixNano
                span.endNanoseconds = message.endTimeUnixNano
                for attribute in message.attributes {
                    if let key = OTLPSpan.Key(name: attribute.key), case .stringValue(let text)? = attribute.value.value { span.attributes[key] = text }
                }
                spans.append(span)
            }
        }
    }
    return spans
}

func purposeBuilt(_ body: [UInt8]) throws -> [OTLPSpan] {
    try body.withUnsafeBufferPointer { try TraceRequestDecoder.protobuf($0, maxSpans: 100_000, keptValueBytes: OTLPSpan.keptValueBytes(IngestLimits())).spans }
}

func nanosecondsPerSpan(_ body: [UInt8], _ decode: ([UInt8]) throws -> [OTLPSpan]) throws -> [Double] {
    var figures: [Double] = []
    for _ in 0..<rounds {
        let started = ContinuousClock.now
        var spans = 0
        for _ in 0..<decodesPerRound { spans += try decode(body).count }
        let elapsed = started.duration(to: .now).components
        figures.append((Double(elapsed.seconds) * 1e9 + Double(elapsed.attoseconds) / 1e9) / Double(spans))
    }
    return figures.sorted()
}

let body = export()
let (fromGenerated, fromOurs) = (try generated(body), try purposeBuilt(body))
precondition(fromGenerated == fromOurs && fromOurs.count == 512, "both decoders read the same 512 spans")
let ours = try nanosecondsPerSpan(body, purposeBuilt)
let theirs = try nanosecondsPerSpan(body, generated)
func median(_ sorted: [Double]) -> Double { sorted[sorted.count / 2] }
print("otlp-decode-benchmark: \(body.count)-byte export of 512 spans, \(rounds) rounds of \(decodesPerRound) decodes, one core")
print(String(format: "  perfgate's decoder:          %6.0f ns/span (rounds %.0f-%.0f)", median(ours), ours.first!, ours.last!))
print(String(format: "  swift-protobuf, generated:   %6.0f ns/span (rounds %.0f-%.0f)   perfgate's %.1fx faster", median(theirs), theirs.first!, theirs.last!, median(theirs) / median(ours)))
