/// Reads the `Idempotency-Key` header: a client's name for one batch, the same on each retry.
enum IdempotencyKey {
    /// Longest key accepted; a UUID is 36 characters.
    static let maxLength = 255

    /// The key in `values` (the header's values), nil when absent; throws a message when it is not usable.
    static func parse(_ values: [String]) throws(IdempotencyKeyError) -> String? {
        guard let value = values.first else { return nil }
        guard values.count == 1 else { throw IdempotencyKeyError("send one Idempotency-Key header, not \(values.count)") }
        var key = Substring(value)
        // The draft standard writes the key as a quoted structured-field string; plain keys are common too.
        if key.count >= 2, key.first == "\"", key.last == "\"" { key = key.dropFirst().dropLast() }
        guard (1...maxLength).contains(key.utf8.count) else {
            throw IdempotencyKeyError("Idempotency-Key must be 1 to \(maxLength) characters (got \(key.utf8.count)); a UUID is a good key")
        }
        if let offset = key.utf8.firstIndex(where: { !(0x21...0x7E).contains($0) }).map({ key.utf8.distance(from: key.utf8.startIndex, to: $0) }) {
            throw IdempotencyKeyError("Idempotency-Key must be visible ASCII characters without spaces; character \(offset + 1) is not")
        }
        return String(key)
    }
}

/// Why an `Idempotency-Key` header was refused.
struct IdempotencyKeyError: Error {
    let message: String

    init(_ message: String) {
        self.message = message
    }
}
