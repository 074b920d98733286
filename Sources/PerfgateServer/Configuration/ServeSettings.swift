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


    /// One setting: `--name` on the command line, `PERFGATE_NAME` in the environment, `name` in the file.
    package struct Setting: Sendable {
        /// The flag name without dashes, e.g. `max-body-size`.
        package let name: String
        /// What it controls.
        package let summary: String
        /// Its default, as text: shown from the default configuration, where it is written.
        package let defaultText: String
        fileprivate let apply: @Sendable (inout Resolved, String) throws(ConfigurationError) -> Void

        /// A setting of the value at `path`: `parse` reads a text and checks it alone (its error says
        /// what is wrong with the value; the caller names where it came from), `show` writes the default.
        fileprivate init<Value>(
            _ name: String, _ summary: String, _ path: any WritableKeyPath<Resolved, Value> & Sendable,
            parse: @escaping @Sendable (String) throws(ConfigurationError) -> Value, show: (Value) -> String
        ) {
            self.name = name
            self.summary = summary
            defaultText = show(Resolved()[keyPath: path])
            apply = { resolved, text throws(ConfigurationError) in resolved[keyPath: path] = try parse(text) }
        }

        /// The environment variable: `PERFGATE_MAX_BODY_SIZE`.
        package var environmentName: String {
            "PERFGATE_" + name.uppercased().replacingHyphens(with: "_")
        }

        /// The key in the config file: `max_body_size`.
        package var fileKey: String { name.replacingHyphens(with: "_") }

        /// The `--help` text, naming the environment variable and the default.
        package var help: String { "\(summary) (env \(environmentName); default \(defaultText))" }
    }

    /// Every scalar setting, in `--help` order: name, help, where it goes, how it is read and
    /// checked, and how its default (from `ServerConfiguration`) reads. `buckets` and `config` are
    /// handled on their own; checks across settings are `ServerConfiguration.validate`'s.
    package static let all: [Setting] = [
        Setting("host", "Address to listen on", \.configuration.host, parse: nonEmpty, show: { $0 }),
        Setting("port", "Port to listen on", \.configuration.port, parse: { text throws(ConfigurationError) in try integer(text, in: 0...65_535) }, show: String.init),
        Setting("db", "SQLite file for the minute windows (its folder is created), or a postgres:// URL of a database replicas share", \.configuration.databasePath,
                parse: { text throws(ConfigurationError) in
                    guard PostgresLocation.isURL(text) else { return try nonEmpty(text) }
                    do throws(PostgresLocationError) { _ = try PostgresLocation(url: text) } catch { throw ConfigurationError("the URL \(error)") }
                    return text
                }, show: { $0 }),
        Setting("instance", "This replica's name in a shared PostgreSQL store; its counters are restored under it", \.configuration.instance,
                parse: nonEmpty, show: { $0.isEmpty ? "hostname" : $0 }),
        Setting("retention", "How long minute windows are kept, e.g. 25h or 7d; at least 2h, so an hour-ago comparison has data", \.configuration.retentionMinutes,
                parse: { text throws(ConfigurationError) in try minutes(text, atLeast: 120) }, show: minutesText),
        Setting("percentage-window", "Sliding window of stage_percentage, in whole minutes", \.configuration.stageShareWindowMinutes,
                parse: { text throws(ConfigurationError) in try minutes(text, atLeast: 1) }, show: minutesText),
        Setting("durability", "full: acknowledged events survive power loss; normal: they survive a process crash", \.configuration.durability,
                parse: { text throws(ConfigurationError) in
                    guard let durability = Durability(rawValue: text.lowercased()) else { throw ConfigurationError("must be full or normal (got \(text))") }
                    return durability
                }, show: \.rawValue),
        Setting("max-body-size", "Largest request body, as sent, e.g. 8MiB; at least 1KiB", \.configuration.maxBodyBytes,
                parse: { text throws(ConfigurationError) in try byteSize(text, atLeast: 1024) }, show: byteSizeText),
        Setting("max-inflated-body-size", "Largest request body after gzip inflation; at least the body size", \.configuration.maxInflatedBodyBytes,
                parse: { text throws(ConfigurationError) in try byteSize(text, atLeast: 1024) }, show: byteSizeText),
        Setting("max-events-per-batch", "Most events in one request", \.configuration.limits.maxEventsPerBatch,
                parse: { text throws(ConfigurationError) in try integer(text, in: 1...10_000_000) }, show: String.init),
        Setting("max-label-length", "Longest endpoint, provider or model value, in bytes", \.configuration.limits.maxLabelValueBytes,
                parse: { text throws(ConfigurationError) in try integer(text, in: 1...65_536) }, show: String.init),
        Setting("max-series-per-metric", "Most series per histogram family; more are counted under __overflow__", \.configuration.maxSeriesPerMetric,
                parse: { text throws(ConfigurationError) in try integer(text, in: 1...10_000_000) }, show: String.init),
        Setting("max-queued-events", "Most events waiting for a commit before ingest answers 503; at least one full batch", \.configuration.maxQueuedEvents,
                parse: { text throws(ConfigurationError) in try integer(text, in: 1...100_000_000) }, show: String.init),
        Setting("max-connections", "Most connections open at once; past it a new one closes the oldest connection waiting on its client", \.configuration.maxConnections,
                parse: { text throws(ConfigurationError) in try integer(text, in: 1...1_000_000) }, show: String.init),
        Setting("max-body-memory", "Most bytes of request bodies held in memory at once, across connections, e.g. 256MiB; past it a request gets 503 before its body is read",
                \.configuration.maxBodyMemoryBytes, parse: { text throws(ConfigurationError) in try byteSize(text, atLeast: 1024) }, show: byteSizeText),
        Setting("allowed-origins", "Comma-separated origins (https://dash.example.com) whose web pages may post events or delete series; none by default",
                \.configuration.allowedOrigins, parse: CrossOriginCheck.parseList, show: { $0.isEmpty ? "none" : $0.joined(separator: ",") }),
        Setting("allowed-hosts", "Comma-separated host names browsers may reach perfgate by when no tokens are configured, beside its IP addresses and localhost (DNS rebinding)",
                \.configuration.allowedHosts, parse: { text throws(ConfigurationError) in
                    (tokenList(text) ?? []).map { $0.lowercased() }
                }, show: { $0.isEmpty ? "none" : $0.joined(separator: ",") }),
        Setting("request-timeout", "Time a connection has to deliver each request, head and body (a body sent after its answer too), to read each answer, and most it may idle, e.g. 30s; 1s to 1h",
                \.configuration.requestTimeoutSeconds, parse: { text throws(ConfigurationError) in try seconds(text, in: 1...3600) }, show: DurationText.format),
        Setting("series-ttl", "Delete series not written for this long, e.g. 7d, at least 5m; 0 keeps them", \.configuration.seriesTTLMinutes,
                parse: { text throws(ConfigurationError) in text == "0" ? 0 : try minutes(text, atLeast: 5) }, show: { $0 == 0 ? "0" : minutesText($0) }),
        Setting("idempotency-ttl", "How long the answer to a batch sent with an Idempotency-Key is kept for its retries; 1m to 30d", \.configuration.idempotencyTTLSeconds,
                parse: { text throws(ConfigurationError) in try seconds(text, in: 60...30 * 86_400) }, show: DurationText.format),
        Setting("max-kept-answers", "Most answers kept for Idempotency-Key retries; past it the oldest are forgotten first (and counted)",
                \.configuration.maxKeptAnswers, parse: { text throws(ConfigurationError) in try integer(text, in: 1...100_000_000) }, show: String.init),
        Setting("max-kept-answer-bytes", "Most bytes the kept answers may take, e.g. 64MiB; past it the oldest are forgotten first (and counted)",
                \.configuration.maxKeptAnswerBytes, parse: { text throws(ConfigurationError) in try byteSize(text, atLeast: 64 << 10) }, show: byteSizeText),
        Setting("max-queued-reads", "Most trend queries and status pages waiting for the store's readers; past it they get 503 with Retry-After",
                \.configuration.maxQueuedReads, parse: { text throws(ConfigurationError) in try integer(text, in: 0...10_000) }, show: String.init),
        Setting("trace-wait", "How long OTLP spans wait for their trace's root span before the trace is dropped (and counted), and a counted root for spans that end after it, e.g. 5m; 10s to 1d",
                \.configuration.traceWaitSeconds, parse: { text throws(ConfigurationError) in try seconds(text, in: 10...86_400) }, show: DurationText.format),
        Setting("max-waiting-spans", "Most OTLP spans kept waiting at once (for their root, or counted roots for later spans); past it new root-less traces are refused",
                \.configuration.maxWaitingSpans, parse: { text throws(ConfigurationError) in try integer(text, in: 1...100_000_000) }, show: String.init),
        Setting("max-waiting-bytes", "Most bytes those waiting spans may take in the store, e.g. 256MiB",
                \.configuration.maxWaitingBytes, parse: { text throws(ConfigurationError) in try byteSize(text, atLeast: 1024) }, show: byteSizeText),
        Setting("max-spans-per-export", "Most spans in one OTLP export to /v1/traces", \.configuration.maxSpansPerExport,
                parse: { text throws(ConfigurationError) in try integer(text, in: 1...10_000_000) }, show: String.init),
        Setting("max-spans-per-trace", "Most spans one OTLP trace may hold, those waiting for their root included; past it the trace is refused",
                \.configuration.limits.maxSpansPerTrace, parse: { text throws(ConfigurationError) in try integer(text, in: 1...1_000_000) }, show: String.init),
        Setting("tls-certificate", "PEM certificate chain to serve HTTPS with (with --tls-key)", \.configuration.tlsCertificatePath,
                parse: nonEmpty, show: { $0 ?? "none: plain HTTP" }),
        Setting("tls-key", "PEM private key of --tls-certificate", \.configuration.tlsKeyPath, parse: nonEmpty, show: { $0 ?? "none" }),
        Setting("tokens-file", "File of bearer tokens, one '<role> <token>' per line, roles ingest, read and admin", \.tokensFile,
                parse: { path throws(ConfigurationError) in try AccessTokens.parseFile(try TextFile.read(path), path: path) },
                show: { $0.isOpen ? "none: every endpoint is open" : "\($0.count(of: .admin) + $0.count(of: .read) + $0.count(of: .ingest)) tokens" }),
        Setting("ingest-tokens", "Comma-separated bearer tokens that may post events (prefer the environment or --tokens-file: flags show in ps)",
                \.roleTokens[.ingest], parse: tokenList, show: tokenListText),
        Setting("read-tokens", "Comma-separated bearer tokens that may read /metrics and /v1/trends", \.roleTokens[.read], parse: tokenList, show: tokenListText),
        Setting("admin-tokens", "Comma-separated bearer tokens that may do everything", \.roleTokens[.admin], parse: tokenList, show: tokenListText),
        Setting("log-level", "trace, debug, info, notice, warning, error or critical", \.logLevel,
                parse: { text throws(ConfigurationError) in
                    guard let level = Logger.Level(rawValue: text.lowercased()) else {
                        throw ConfigurationError("must be one of trace, debug, info, notice, warning, error, critical (got \(text))")
                    }
                    return level
                }, show: \.rawValue),
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

    @Sendable static func nonEmpty(_ text: String) throws(ConfigurationError) -> String {
        guard !text.isEmpty else { throw ConfigurationError("must not be empty") }
        return text
    }

    @Sendable static func tokenList(_ text: String) -> [String]? {
        text.split(separator: ",").map { String($0).trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
    }

    static func tokenListText(_ tokens: [String]?) -> String {
        tokens.map { "\($0.count) tokens" } ?? "none"
    }

    static func integer(_ text: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError("must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \(text))")
        }
        return value
    }

    static func minutes(_ text: String, atLeast least: Int64) throws(ConfigurationError) -> Int64 {
        guard let minutes = DurationText.wholeMinutes(text) else {
            throw ConfigurationError("must be whole minutes such as 5m, 1h or 7d (got \(text))")
        }
        guard minutes >= least else { throw ConfigurationError("must be at least \(minutesText(least)) (got \(text))") }
        return minutes
    }

    static func minutesText(_ minutes: Int64) -> String {
        DurationText.format(seconds: minutes * 60)
    }

    static func seconds(_ text: String, in range: ClosedRange<Int64>) throws(ConfigurationError) -> Int64 {
        guard let seconds = DurationText.seconds(text) else { throw ConfigurationError("must be a duration such as 30s, 2m or 24h (got \(text))") }
        guard range.contains(seconds) else {
            throw ConfigurationError("must be \(DurationText.format(seconds: range.lowerBound)) to \(DurationText.format(seconds: range.upperBound)) (got \(text))")
        }
        return seconds
    }

    static func byteSize(_ text: String, atLeast least: Int) throws(ConfigurationError) -> Int {
        let size = try byteSize(text)
        guard size >= least else { throw ConfigurationError("must be at least \(byteSizeText(least)) (got \(text))") }
        return size
    }

    /// The shortest exact text of a size: `8388608` → `8MiB`, `1500` → `1500B`.
    static func byteSizeText(_ bytes: Int) -> String {
        for (suffix, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes > 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)B"
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
