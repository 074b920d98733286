/// The bounds every posted event is checked against.
public struct IngestLimits: Sendable, Equatable {
    /// Longest label value (endpoint, provider, model), in UTF-8 bytes.
    public var maxLabelValueBytes: Int = 128
    /// Longest stage name, in bytes.
    public var maxStageNameBytes: Int = 64
    /// Most stages one event may carry.
    public var maxStagesPerEvent: Int = 32
    /// Most events one request may carry.
    public var maxEventsPerBatch: Int = 50_000
    /// Longest accepted stage duration, in nanoseconds (one day).
    public var maxDurationNanoseconds: Int64 = 86_400 * 1_000_000_000
    /// How far ahead of the server's clock a timestamp may be, in nanoseconds (five minutes).
    public var maxFutureSkewNanoseconds: Int64 = 300 * 1_000_000_000
    /// How far back a timestamp may be, in nanoseconds: the store's retention.
    public var maxAgeNanoseconds: Int64 = 25 * 3600 * 1_000_000_000

    /// The defaults.
    public init() {}
}
