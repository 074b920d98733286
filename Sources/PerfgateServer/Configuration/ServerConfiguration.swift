import Foundation
import PerfgateCore
import PerfgateStore

/// Everything the service can be told at start-up; the defaults are what `perfgate serve` runs with.
package struct ServerConfiguration: Sendable {
    /// Address to listen on.
    package var host = "127.0.0.1"
    /// Port to listen on.
    package var port = 9095
    /// The SQLite file (its folder is created when missing), or a `postgres://` URL of a database
    /// several replicas share.
    package var databasePath = "data/perfgate.sqlite"
    /// This replica's name in a shared store; empty: the host name.
    package var instance = ""
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
    /// Seconds an OTLP span may wait for its trace's local root span before the trace is given
    /// up, and a counted root for spans that end after it.
    package var traceWaitSeconds: Int64 = 300
    /// Most OTLP span rows kept waiting at once (spans for their root, counted roots for late spans).
    package var maxWaitingSpans = 1_000_000
    /// Most bytes those rows may take in the store.
    package var maxWaitingBytes = 256 << 20
    /// Most spans in one OTLP export.
    package var maxSpansPerExport = 50_000
    /// How long the answer to a request with an `Idempotency-Key` is kept, in seconds.
    package var idempotencyTTLSeconds: Int64 = 24 * 3600
    /// Most answers kept for retries; past it the oldest go first.
    package var maxKeptAnswers = 100_000
    /// Most bytes those answers' bodies may take; past it the oldest go first.
    package var maxKeptAnswerBytes = 64 << 20
    /// Most reads of the store (trend queries, status pages) waiting for a turn; past it they get 503.
    package var maxQueuedReads = 16
    /// Most connections open at once; past it a new one closes the oldest that waits on its client.
    package var maxConnections = 1000
    /// Most bytes of request bodies held in memory at once, across every connection.
    package var maxBodyMemoryBytes = 256 * 1024 * 1024
    /// Origins (`https://dash.example.com`) whose pages may send state-changing requests.
    package var allowedOrigins: [String] = []
    /// Host names browsers may reach an open perfgate by, beside its IP addresses and localhost.
    package var allowedHosts: [String] = []
    /// The PEM certificate chain to serve HTTPS with; with `tlsKeyPath`, or neither for plain HTTP.
    package var tlsCertificatePath: String?
    /// The PEM private key of `tlsCertificatePath`.
    package var tlsKeyPath: String?
    /// Bearer tokens per role; none means every endpoint is open.
    package var accessTokens = AccessTokens()

    /// The defaults.
    package init() {}

    /// The oldest creation time (Unix seconds) of an idempotent answer still valid at `now`.
    /// The store, as logs may show it: a PostgreSQL URL without its password.
    package var storeDescription: String {
        guard PostgresLocation.isURL(databasePath) else { return databasePath }
        return (try? PostgresLocation(url: databasePath)).map { "\($0)" } ?? "an unreadable postgres:// URL"
    }

    /// This replica's name: `instance`, or the host name.
    var instanceName: String {
        instance.isEmpty ? ProcessInfo.processInfo.hostName : instance
    }

    func oldestKeptAnswer(at now: Timestamp) -> Int64 {
        now.seconds - idempotencyTTLSeconds
    }

    /// The event limits with the age bound tied to the retention.
    var effectiveLimits: IngestLimits {
        var limits = limits
        limits.maxAgeNanoseconds = retentionMinutes * Minute.nanoseconds
        return limits
    }

    /// Checks what no single setting can: that the values make sense together. Each setting's own
    /// range is checked where it is declared (`ServeSettings.all`).
    package func validate() throws(ConfigurationError) {
        guard stageShareWindowMinutes < retentionMinutes else {
            throw ConfigurationError("the percentage window must be shorter than the retention")
        }
        guard maxBodyMemoryBytes >= maxBodyBytes else {
            throw ConfigurationError("the body memory budget (--max-body-memory) must hold at least one body of --max-body-size")
        }
        guard maxInflatedBodyBytes >= maxBodyBytes else {
            throw ConfigurationError("the inflated body limit must be at least the body limit")
        }
        guard maxQueuedEvents >= limits.maxEventsPerBatch else {
            throw ConfigurationError("the queue must hold at least one full batch (\(limits.maxEventsPerBatch) events)")
        }
        guard (tlsCertificatePath == nil) == (tlsKeyPath == nil) else {
            throw ConfigurationError("give --tls-certificate and --tls-key together, or neither for plain HTTP")
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
