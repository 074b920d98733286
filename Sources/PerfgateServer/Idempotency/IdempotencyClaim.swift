import PerfgateCore

/// A request's `Idempotency-Key`, carried with its counts to the writer, which either keeps the
/// request's answer in the same transaction as the counts or finds an earlier answer and applies nothing.
struct IdempotencyClaim: Sendable {
    /// The client's key.
    let key: String
    /// The fingerprint of the body the key came with.
    let bodyFingerprint: UInt64
    /// The request's answer, once the writer knows what the commit did (its overflow warnings).
    let render: @Sendable (CommitReceipt) -> [UInt8]
}
