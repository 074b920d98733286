/// The bounds every posted event is checked against.
package struct IngestLimits: Sendable, Equatable {
    /// Longest label value (endpoint, provider, model), in UTF-8 bytes.
    package var maxLabelValueBytes: Int = 128
    /// Longest stage name, in bytes.
    package var maxStageNameBytes: Int = 64
    /// Most stages one event may carry.
    package var maxStagesPerEvent: Int = 32
    /// Most spans one OTLP trace may hold, waiting ones included: past it the trace is refused.
    /// A trace is assembled (and its waiting spans written) in one commit, which every client's
    /// writes share, and each export that touches a waiting trace assembles all of it again.
    package var maxSpansPerTrace: Int = 4_096
    /// Most events one request may carry.
    package var maxEventsPerBatch: Int = 50_000
    /// Longest accepted stage duration, in nanoseconds (one day).
    package var maxDurationNanoseconds: Int64 = 86_400 * 1_000_000_000
    /// How far ahead of the server's clock a timestamp may be, in nanoseconds (five minutes).
    package var maxFutureSkewNanoseconds: Int64 = 300 * 1_000_000_000
    /// How far back a timestamp may be, in nanoseconds: the store's retention.
    package var maxAgeNanoseconds: Int64 = 25 * 3600 * 1_000_000_000

    /// The defaults.
    package init() {}
}
