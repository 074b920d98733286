import Logging
import PerfgateCore
import PerfgateStore

/// The settings `perfgate serve` reads, each from a flag, an environment variable or the config
/// file; a flag beats the environment, which beats the file, which beats the default.
package enum ServeSettings {
    /// What the settings resolve to.
    package struct Resolved: Sendable {
        /// The service configuration.
        package var configuration = ServerConfiguration()
        /// How much to log.
        package var logLevel: Logger.Level = .info
        /// Tokens from `--tokens-file`, and per-role lists that replace the file's for their role.
        var tokensFile = AccessTokens()
        var roleTokens: [AccessRole: [String]] = [:]
    }

    private static func tokenList(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0).trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
    }

    /// One setting: `--name` on the command line, `PERFGATE_NAME` in the environment, `name` in the file.
    package struct Setting: Sendable {
        /// The flag name without dashes, e.g. `max-body-size`.
        package let name: String
        /// What it controls.
        package let summary: String
        /// Its default, as text.
        package let defaultText: String
        fileprivate let apply: @Sendable (inout Resolved, String) throws(ConfigurationError) -> Void

        /// The environment variable: `PERFGATE_MAX_BODY_SIZE`.
        package var environmentName: String {
            "PERFGATE_" + name.uppercased().replacingHyphens(with: "_")
        }

        /// The key in the config file: `max_body_size`.
        package var fileKey: String { name.replacingHyphens(with: "_") }

        /// The `--help` text, naming the environment variable and the default.
        package var help: String { "\(summary) (env \(environmentName); default \(defaultText))" }
    }

    /// Every scalar setting, in `--help` order. `buckets` and `config` are handled on their own.
    package static let all: [Setting] = [
        Setting(name: "host", summary: "Address to listen on", defaultText: "127.0.0.1") { resolved, text throws(ConfigurationError) in
            guard !text.isEmpty else { throw ConfigurationError("must not be empty") }
            resolved.configuration.host = text
        },
        Setting(name: "port", summary: "Port to listen on", defaultText: "9095") { resolved, text throws(ConfigurationError) in
            resolved.configuration.port = try integer(text, in: 0...65_535)
        },
        Setting(name: "db", summary: "SQLite file for the minute windows; its folder is created", defaultText: "data/perfgate.sqlite") { resolved, text throws(ConfigurationError) in
            guard !text.isEmpty else { throw ConfigurationError("must not be empty") }
            resolved.configuration.databasePath = text
        },
        Setting(name: "retention", summary: "How long minute windows are kept, e.g. 25h or 7d", defaultText: "25h") { resolved, text throws(ConfigurationError) in
            resolved.configuration.retentionMinutes = try minutes(text)
        },
        Setting(name: "percentage-window", summary: "Sliding window of stage_percentage, in whole minutes", defaultText: "5m") { resolved, text throws(ConfigurationError) in
            resolved.configuration.stageShareWindowMinutes = try minutes(text)
        },
        Setting(name: "durability", summary: "full: acknowledged events survive power loss; normal: they survive a process crash", defaultText: "full") { resolved, text throws(ConfigurationError) in
            guard let durability = Durability(rawValue: text.lowercased()) else { throw ConfigurationError("must be full or normal (got \(text))") }
            resolved.configuration.durability = durability
        },
        Setting(name: "max-body-size", summary: "Largest request body, as sent, e.g. 8MiB", defaultText: "8MiB") { resolved, text throws(ConfigurationError) in
            resolved.configuration.maxBodyBytes = try byteSize(text)
        },
        Setting(name: "max-inflated-body-size", summary: "Largest request body after gzip inflation", defaultText: "64MiB") { resolved, text throws(ConfigurationError) in
            resolved.configuration.maxInflatedBodyBytes = try byteSize(text)
        },
        Setting(name: "max-events-per-batch", summary: "Most events in one request", defaultText: "50000") { resolved, text throws(ConfigurationError) in
            resolved.configuration.limits.maxEventsPerBatch = try integer(text, in: 1...10_000_000)
        },
        Setting(name: "max-label-length", summary: "Longest endpoint, provider or model value, in bytes", defaultText: "128") { resolved, text throws(ConfigurationError) in
            resolved.configuration.limits.maxLabelValueBytes = try integer(text, in: 1...65_536)
        },
        Setting(name: "max-series-per-metric", summary: "Most series per histogram family; more are counted under __overflow__", defaultText: "10000") { resolved, text throws(ConfigurationError) in
            resolved.configuration.maxSeriesPerMetric = try integer(text, in: 1...10_000_000)
        },
        Setting(name: "max-queued-events", summary: "Most events waiting for a commit before ingest answers 503", defaultText: "1000000") { resolved, text throws(ConfigurationError) in
            resolved.configuration.maxQueuedEvents = try integer(text, in: 1...100_000_000)
        },
        Setting(name: "max-connections", summary: "Most connections open at once; more wait in the listen queue until one closes", defaultText: "1000") { resolved, text throws(ConfigurationError) in
            resolved.configuration.maxConnections = try integer(text, in: 1...1_000_000)
        },
        Setting(name: "request-timeout", summary: "Time a connection has to deliver each request, head and body, and most a keep-alive connection may idle, e.g. 30s", defaultText: "30s") { resolved, text throws(ConfigurationError) in
            guard let seconds = DurationText.seconds(text) else { throw ConfigurationError("must be a duration such as 30s or 2m (got \(text))") }
            resolved.configuration.requestTimeoutSeconds = seconds
        },
        Setting(name: "series-ttl", summary: "Delete series not written for this long, e.g. 7d; 0 keeps them", defaultText: "0") { resolved, text throws(ConfigurationError) in
            resolved.configuration.seriesTTLMinutes = text == "0" ? 0 : try minutes(text)
        },
        Setting(name: "idempotency-ttl", summary: "How long the answer to a batch sent with an Idempotency-Key is kept for its retries", defaultText: "24h") { resolved, text throws(ConfigurationError) in
            guard let seconds = DurationText.seconds(text) else { throw ConfigurationError("must be a duration such as 24h or 30m (got \(text))") }
            resolved.configuration.idempotencyTTLSeconds = seconds
        },
        Setting(name: "tls-certificate", summary: "PEM certificate chain to serve HTTPS with (with --tls-key)", defaultText: "none: plain HTTP") { resolved, text throws(ConfigurationError) in
            guard !text.isEmpty else { throw ConfigurationError("must not be empty") }
            resolved.configuration.tlsCertificatePath = text
        },
        Setting(name: "tls-key", summary: "PEM private key of --tls-certificate", defaultText: "none") { resolved, text throws(ConfigurationError) in
            guard !text.isEmpty else { throw ConfigurationError("must not be empty") }
            resolved.configuration.tlsKeyPath = text
        },
        Setting(name: "tokens-file", summary: "File of bearer tokens, one '<role> <token>' per line, roles ingest, read and admin", defaultText: "none: every endpoint is open") { resolved, text throws(ConfigurationError) in
            resolved.tokensFile = try AccessTokens.parseFile(try TextFile.read(text), path: text)
        },
        Setting(name: "ingest-tokens", summary: "Comma-separated bearer tokens that may post events (prefer the environment or --tokens-file: flags show in ps)", defaultText: "none") { resolved, text throws(ConfigurationError) in
            resolved.roleTokens[.ingest] = tokenList(text)
        },
        Setting(name: "read-tokens", summary: "Comma-separated bearer tokens that may read /metrics and /v1/trends", defaultText: "none") { resolved, text throws(ConfigurationError) in
            resolved.roleTokens[.read] = tokenList(text)
        },
        Setting(name: "admin-tokens", summary: "Comma-separated bearer tokens that may do everything", defaultText: "none") { resolved, text throws(ConfigurationError) in
            resolved.roleTokens[.admin] = tokenList(text)
        },
        Setting(name: "log-level", summary: "trace, debug, info, notice, warning, error or critical", defaultText: "info") { resolved, text throws(ConfigurationError) in
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ConfigurationError("must be one of trace, debug, info, notice, warning, error, critical (got \(text))")
            }
            resolved.logLevel = level
        },
    ]

    /// The `--buckets` help text.
    package static let bucketsHelp =
        "Bucket bounds in seconds for one histogram, e.g. backend_ttfb_seconds=0.1,0.5,1; repeatable (env PERFGATE_BUCKETS, entries separated by ';'; default: the seed's buckets)"

    /// The `--config` help text.
    package static let configHelp = "A JSON file of settings keyed like the flags with underscores, e.g. {\"port\": 9095, \"buckets\": {\"backend_ttfb_seconds\": [0.1, 0.5]}} (env PERFGATE_CONFIG)"

    /// The settings given as `serve`'s arguments: `--name value` or `--name=value` for each
    /// setting of `all`, `--buckets` (repeatable) and `--config`. The table declares them: the
    /// command line takes no list of its own.
    package struct Flags: Sendable {
        package private(set) var values: [String: String] = [:]
        package private(set) var buckets: [String] = []
        /// The config file named by `--config`.
        package private(set) var config: String?

        /// Reads the arguments; an unknown name, a word that is not a flag or a flag without its
        /// value is refused, naming it.
        package init(_ arguments: [String]) throws(ConfigurationError) {
            var rest = arguments[...]
            while let word = rest.popFirst() {
                guard word.hasPrefix("--"), word.count > 2 else {
                    throw ConfigurationError("unexpected argument '\(word)': settings are given as --name value (perfgate serve --help lists them)")
                }
                var name = String(word.dropFirst(2))
                var value: String?
                if let equals = name.firstIndex(of: "=") {
                    value = String(name[name.index(after: equals)...])
                    name = String(name[..<equals])
                }
                guard name == "buckets" || name == "config" || all.contains(where: { $0.name == name }) else {
                    throw ConfigurationError("unknown option '--\(name)' (perfgate serve --help lists the settings)")
                }
                if value == nil {
                    guard let next = rest.first, !next.hasPrefix("--") else { throw ConfigurationError("missing value for '--\(name)'") }
                    value = rest.popFirst()
                }
                switch name {
                case "buckets": buckets.append(value!)
                case "config": config = value
                default: values[name] = value
                }
            }
        }

        /// The layer the flags make: it wins over the environment and the file.
        package var layer: Layer { .flags(values, buckets: buckets) }
    }

    /// The settings as `perfgate serve --help` lists them, from the table.
    package static var helpText: String {
        let rows = [("--config <file>", configHelp)] + all.map { ("--\($0.name) <value>", $0.help) } + [("--buckets <family=bounds>", bucketsHelp)]
        return rows.map { flag, help in "  \(flag)\n" + wrapped(help, width: 70, indent: "        ") }.joined(separator: "\n")
    }

    /// `text` in lines of at most `width` characters (a longer word stands alone), each indented.
    private static func wrapped(_ text: String, width: Int, indent: String) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines.map { indent + $0 }.joined(separator: "\n")
    }

    /// One layer of settings as text, and how to name it in an error.
    package struct Layer: Sendable {
        let values: [String: String]
        let buckets: [String]
        let describe: @Sendable (String) -> String

        /// Command-line flags: setting name to text, and the `--buckets` entries.
        package static func flags(_ values: [String: String], buckets: [String]) -> Layer {
            Layer(values: values, buckets: buckets) { "--\($0)" }
        }

        /// The process environment.
        package static func environment(_ environment: [String: String]) -> Layer {
            var values: [String: String] = [:]
            for setting in all {
                if let text = environment[setting.environmentName] { values[setting.name] = text }
            }
            let buckets = environment["PERFGATE_BUCKETS"].map { $0.split(separator: ";").map(String.init) } ?? []
            return Layer(values: values, buckets: buckets) { name in
                name == "buckets" ? "PERFGATE_BUCKETS" : all.first { $0.name == name }?.environmentName ?? name
            }
        }

        /// A JSON config file's text.
        package static func file(_ text: [UInt8], path: String) throws(ConfigurationError) -> Layer {
            let document: JSONValue
            do { document = try JSONValue.parse(text) } catch { throw ConfigurationError("\(path): \(error)") }
            guard let members = document.objectMembers else { throw ConfigurationError("\(path) must hold a JSON object of settings") }
            var values: [String: String] = [:]
            var buckets: [String] = []
            for (key, value) in members {
                if key == "buckets" {
                    guard let perMetric = value.objectMembers else {
                        throw ConfigurationError("buckets in \(path) must be an object of family name to bounds")
                    }
                    for (metric, bounds) in perMetric {
                        guard let text = bounds.scalarText else {
                            throw ConfigurationError("buckets.\(metric) in \(path) must be an array of numbers or a comma-separated string")
                        }
                        buckets.append("\(metric)=\(text)")
                    }
                    continue
                }
                guard let setting = all.first(where: { $0.fileKey == key }) else {
                    throw ConfigurationError("unknown setting \(key) in \(path); known: \((all.map(\.fileKey) + ["buckets"]).joined(separator: ", "))")
                }
                guard let text = value.scalarText else { throw ConfigurationError("\(key) in \(path) must be a string or a number") }
                values[setting.name] = text
            }
            return Layer(values: values, buckets: buckets) { name in
                "\(name == "buckets" ? "buckets" : all.first { $0.name == name }?.fileKey ?? name) in \(path)"
            }
        }
    }

    /// Applies the layers in order, each overriding the ones before, then checks the result.
    package static func resolve(_ layers: [Layer]) throws(ConfigurationError) -> Resolved {
        var resolved = Resolved()
        var bucketOverrides: [HistogramMetric: BucketLayout] = [:]
        for layer in layers {
            for setting in all {
                guard let text = layer.values[setting.name] else { continue }
                do {
                    try setting.apply(&resolved, text.trimmingCharacters(in: " \t"))
                } catch {
                    throw ConfigurationError("\(layer.describe(setting.name)): \(error.description)")
                }
            }
            for entry in layer.buckets {
                do {
                    let (metric, layout) = try bucketEntry(entry)
                    bucketOverrides[metric] = layout
                } catch {
                    throw ConfigurationError("\(layer.describe("buckets")): \(error.description)")
                }
            }
        }
        resolved.configuration.layouts = BucketLayouts(overrides: bucketOverrides)
        var tokens = resolved.tokensFile
        for (role, list) in resolved.roleTokens {
            do {
                try tokens.replace(role, with: list)
            } catch {
                throw ConfigurationError("\(role.rawValue)-tokens: \(error.description)")
            }
        }
        resolved.configuration.accessTokens = tokens
        try resolved.configuration.validate()
        return resolved
    }

    // MARK: Value parsing

    static func bucketEntry(_ entry: String) throws(ConfigurationError) -> (HistogramMetric, BucketLayout) {
        let parts = entry.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: " \t") }
        guard parts.count == 2 else { throw ConfigurationError("\(entry) must look like backend_ttfb_seconds=0.1,0.5,1") }
        guard let metric = HistogramMetric(name: parts[0]) else {
            throw ConfigurationError("unknown histogram \(parts[0]); use one of \(HistogramMetric.allCases.map(\.name).joined(separator: ", "))")
        }
        do {
            return (metric, try BucketLayout(seconds: parts[1].split(separator: ",").map(String.init)))
        } catch {
            throw ConfigurationError("\(metric.name) \(error.description)")
        }
    }

    static func integer(_ text: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError("must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \(text))")
        }
        return value
    }

    static func minutes(_ text: String) throws(ConfigurationError) -> Int64 {
        guard let minutes = DurationText.wholeMinutes(text) else {
            throw ConfigurationError("must be whole minutes such as 5m, 1h or 7d (got \(text))")
        }
        return minutes
    }

    static func byteSize(_ text: String) throws(ConfigurationError) -> Int {
        let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let number = Int(String(text.dropLast(suffix.count)).trimmingCharacters(in: " ")), number >= 0, number <= Int.max / factor else { break }
            return number * factor
        }
        guard let plain = Int(text), plain >= 0 else {
            throw ConfigurationError("must be a size in bytes such as 8388608, 8MiB or 512KiB (got \(text))")
        }
        return plain
    }
}

extension String {
    func replacingHyphens(with replacement: String) -> String {
        split(separator: "-", omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
