import HTTPTypes
import PerfgateCore

/// Reading the few request headers perfgate acts on.
enum HeaderParsing {
    /// The media type of a `Content-Type` value, lower-cased, without parameters.
    static func mediaType(_ value: String) -> String {
        // Nearly every client sends a bare lower-case type: no need to split, trim or lower-case it.
        if value.utf8.allSatisfy({ $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") && $0 &- UInt8(ascii: "A") >= 26 }) {
            return value
        }
        let type = value.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        return type.trimmingCharacters(in: " \t").lowercased()
    }

    /// True when an `Accept-Encoding` value allows gzip (explicitly, or by `*`, with q > 0).
    static func acceptsGzip(_ value: String?) -> Bool {
        guard let value else { return false }
        var wildcard = false
        for (coding, _, quality) in weightedItems(value) {
            if coding == "gzip" || coding == "x-gzip" { return quality > 0 }
            if coding == "*" { wildcard = quality > 0 }
        }
        return wildcard
    }

    /// The items of an `Accept`-style list, lower-cased: each value, its parameters other than
    /// the value itself (`q` included), and its quality (`q=`, default 1).
    static func weightedItems(_ value: String) -> [(value: String, parameters: [String], quality: Double)] {
        value.split(separator: ",").compactMap { item in
            let parts = item.split(separator: ";").map { String($0).trimmingCharacters(in: " \t").lowercased() }
            guard let first = parts.first else { return nil }
            let parameters = Array(parts.dropFirst())
            let quality = parameters.first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return (first, parameters, quality)
        }
    }
}

extension HeaderParsing {
    /// The exposition format an `Accept` value asks for: protobuf when it lists Prometheus'
    /// `application/vnd.google.protobuf` with `proto=io.prometheus.client.MetricFamily` and
    /// `encoding=delimited` at a quality above 0 and at least that of any text format it lists
    /// (Prometheus sends this when native histograms are enabled); otherwise text.
    static func expositionFormat(_ accept: String?) -> ExpositionWriter.Format {
        guard let accept, accept.contains("vnd.google.protobuf") else { return .text }
        var protobuf = 0.0
        var text = 0.0
        for (type, parameters, quality) in weightedItems(accept) {
            if type == "application/vnd.google.protobuf", parameters.contains("proto=io.prometheus.client.metricfamily"),
                parameters.contains("encoding=delimited")
            {
                protobuf = max(protobuf, quality)
            } else if type.hasPrefix("text/") || type.hasPrefix("application/openmetrics-text") {
                text = max(text, quality)
            }
        }
        return protobuf > 0 && protobuf >= text ? .protobuf : .text
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
