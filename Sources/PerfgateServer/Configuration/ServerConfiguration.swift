import PerfgateCore
import PerfgateStore

/// Everything the service can be told at start-up; the defaults are what `perfgate serve` runs with.
package struct ServerConfiguration: Sendable {
    /// Address to listen on.
    package var host = "127.0.0.1"
    /// Port to listen on.
    package var port = 9095
    /// The SQLite file; its folder is created when missing.
    package var databasePath = "data/perfgate.sqlite"
    /// How long minute windows are kept, in minutes: an hour-ago comparison and a day-over-day one fit.
    package var retentionMinutes: Int64 = 25 * 60
    /// The width of the `stage_percentage` window, in minutes.
    package var stageShareWindowMinutes: Int64 = 5
    /// Bucket bounds per histogram family.
    package var layouts = BucketLayouts.seed
    /// Bounds on each event's fields.
    package var limits = IngestLimits()
    /// Largest request body accepted, as sent (compressed or not), in bytes.
    package var maxBodyBytes = 8 * 1024 * 1024
    /// Largest body after gzip inflation, in bytes.
    package var maxInflatedBodyBytes = 64 * 1024 * 1024
    /// Most series per histogram family; past it, new series are counted under `__overflow__`.
    package var maxSeriesPerMetric = 10_000
    /// Most events waiting to be written; past it, ingest answers 503 until the queue drains.
    package var maxQueuedEvents = 1_000_000
    /// How hard each commit presses data to disk.
    package var durability: Durability = .full
    /// Seconds between prunes of expired minute windows.
    package var pruneIntervalSeconds: Int64 = 60
    /// Seconds a connection has to deliver its next request, head and body, after it opens or
    /// after the previous response; past it the connection is closed (slow clients, idle keep-alive).
    package var requestTimeoutSeconds: Int64 = 30
    /// Minutes a series may go unwritten before it leaves `/metrics` and the store; 0 keeps series forever.
    package var seriesTTLMinutes: Int64 = 0
    /// How long the answer to a request with an `Idempotency-Key` is kept, in seconds.
    package var idempotencyTTLSeconds: Int64 = 24 * 3600
    /// Most connections open at once; past it new ones wait to be accepted.
    package var maxConnections = 1000
    /// The PEM certificate chain to serve HTTPS with; with `tlsKeyPath`, or neither for plain HTTP.
    package var tlsCertificatePath: String?
    /// The PEM private key of `tlsCertificatePath`.
    package var tlsKeyPath: String?
    /// Bearer tokens per role; none means every endpoint is open.
    package var accessTokens = AccessTokens()

    /// The defaults.
    package init() {}

    /// The oldest creation time (Unix seconds) of an idempotent answer still valid at `now`.
    func oldestKeptAnswer(at now: Timestamp) -> Int64 {
        now.seconds - idempotencyTTLSeconds
    }

    /// The event limits with the age bound tied to the retention.
    var effectiveLimits: IngestLimits {
        var limits = limits
        limits.maxAgeNanoseconds = retentionMinutes * Minute.nanoseconds
        return limits
    }

    /// Checks that the values make sense together; the message names the option to fix.
    package func validate() throws(ConfigurationError) {
        guard (1...65_535).contains(port) || port == 0 else { throw ConfigurationError("port must be 1-65535 (got \(port))") }
        guard !databasePath.isEmpty else { throw ConfigurationError("the database path must not be empty") }
        guard stageShareWindowMinutes >= 1 else { throw ConfigurationError("the percentage window must be at least 1m") }
        guard retentionMinutes >= 2 * 60 else {
            throw ConfigurationError("the retention must be at least 2h so an hour-ago comparison has data (got \(DurationText.format(seconds: retentionMinutes * 60)))")
        }
        guard stageShareWindowMinutes < retentionMinutes else {
            throw ConfigurationError("the percentage window must be shorter than the retention")
        }
        guard maxBodyBytes >= 1024, maxInflatedBodyBytes >= maxBodyBytes else {
            throw ConfigurationError("the body limits must be at least 1 KiB, and the inflated limit at least the body limit")
        }
        guard maxSeriesPerMetric >= 1, maxQueuedEvents >= limits.maxEventsPerBatch else {
            throw ConfigurationError("the series limit must be at least 1 and the queue must hold at least one full batch (\(limits.maxEventsPerBatch) events)")
        }
        guard (1...3600).contains(requestTimeoutSeconds) else {
            throw ConfigurationError("the request timeout must be 1s to 1h (got \(DurationText.format(seconds: requestTimeoutSeconds)))")
        }
        guard (tlsCertificatePath == nil) == (tlsKeyPath == nil) else {
            throw ConfigurationError("give --tls-certificate and --tls-key together, or neither for plain HTTP")
        }
        guard maxConnections >= 1 else { throw ConfigurationError("the connection limit must be at least 1") }
        guard seriesTTLMinutes == 0 || seriesTTLMinutes >= 5 else {
            throw ConfigurationError("the series TTL must be 0 (keep series) or at least 5m (got \(DurationText.format(seconds: seriesTTLMinutes * 60)))")
        }
        guard (60...30 * 86_400).contains(idempotencyTTLSeconds) else {
            throw ConfigurationError("the idempotency TTL must be 1m to 30d (got \(DurationText.format(seconds: idempotencyTTLSeconds)))")
        }
        guard limits.maxLabelValueBytes >= 1, limits.maxEventsPerBatch >= 1 else {
            throw ConfigurationError("the label length and batch limits must be at least 1")
        }
    }
}

/// A configuration that cannot run, and why.
package struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// What to fix.
    package let message: String

    /// An error with a message naming what to fix.
    package init(_ message: String) {
        self.message = message
    }

    package var description: String { message }
}
