/// The answer perfgate gave to an ingest request sent with an `Idempotency-Key`, kept so that a
/// retry with the same key gets the same answer and applies nothing.
package struct IdempotentAnswer: Equatable, Sendable {
    /// The most bytes of an answer kept for replay: a larger one is kept as its counts and the
    /// first errors that fit, saying so.
    package static let maxStoredBytes = 16 * 1024

    /// The client's key.
    package var key: String
    /// A fingerprint of the request body the key was first used with.
    package var bodyFingerprint: UInt64
    /// The HTTP status of the answer.
    package var status: Int
    /// The answer's JSON body.
    package var body: [UInt8]
    /// When the answer was given, in Unix seconds.
    package var createdAt: Int64

    /// A stored answer.
    package init(key: String, bodyFingerprint: UInt64, status: Int, body: [UInt8], createdAt: Int64) {
        self.key = key
        self.bodyFingerprint = bodyFingerprint
        self.status = status
        self.body = body
        self.createdAt = createdAt
    }
}
