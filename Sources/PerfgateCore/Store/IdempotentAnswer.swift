import Synchronization

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

/// The room a store gives kept answers (`--max-kept-answers`, `--max-kept-answer-bytes`), and how
/// many it let go before their time to stay in it: the oldest first, so a retry that comes late
/// under a flood of new keys is the one that may be applied again.
package final class AnswerRoom: Sendable {
    /// Most answers kept.
    package let maxAnswers: Int
    /// Most bytes of answer bodies kept.
    package let maxBytes: Int
    private let forgotten = Atomic<Int>(0)

    /// A room of `maxAnswers` answers and `maxBytes` bytes.
    package init(maxAnswers: Int = 100_000, maxBytes: Int = 64 << 20) {
        precondition(maxAnswers >= 1 && maxBytes >= 1)
        self.maxAnswers = maxAnswers
        self.maxBytes = maxBytes
    }

    /// True when `answers` answers of `bytes` bytes do not fit.
    package func isExceeded(answers: Int, bytes: Int) -> Bool {
        answers > maxAnswers || bytes > maxBytes
    }

    /// What a full room is brought down to: nine tenths of each limit, so that answers are let go
    /// in batches, not one per commit.
    package var target: (answers: Int, bytes: Int) {
        (maxAnswers - maxAnswers / 10, maxBytes - maxBytes / 10)
    }

    /// Notes answers let go before they expired.
    package func forgot(_ count: Int) {
        forgotten.add(count, ordering: .relaxed)
    }

    /// Answers let go before they expired, since start.
    package var forgottenCount: Int { forgotten.load(ordering: .relaxed) }
}
