/// The rules an event's fields must follow; each check returns the problem in words, or nil.
///
/// This is where an event is validated. `EventDecoder` applies these while reading.
package struct EventRules: Sendable {
    /// The bounds in force.
    package let limits: IngestLimits
    /// The server's current time, for the timestamp window.
    package let now: Timestamp

    /// Rules under `limits` at time `now`.
    package init(limits: IngestLimits, now: Timestamp) {
        self.limits = limits
        self.now = now
    }

    /// A label value (endpoint, provider, model) must be non-empty, short, and free of control characters.
    package func checkLabelValue(_ value: String) -> String? {
        if value.isEmpty { return "must not be empty" }
        let length = value.utf8.count
        if length > limits.maxLabelValueBytes {
            return "must be at most \(limits.maxLabelValueBytes) bytes long (got \(length))"
        }
        // Printable ASCII, nearly every value, has no control character to look for.
        if Self.allBytes(of: value, satisfy: { $0 >= 0x20 && $0 < 0x7F }) { return nil }
        for (offset, scalar) in value.unicodeScalars.enumerated() where Self.isControl(scalar) {
            return "must not contain control characters (found U+\(Self.hex(scalar.value)) at character \(offset + 1))"
        }
        return nil
    }

    /// A stage name must match `[a-z][a-z0-9_]*` and be short.
    package func checkStageName(_ name: String) -> String? {
        let bytes = name.utf8
        guard let first = bytes.first, first &- UInt8(ascii: "a") < 26,
            Self.allBytes(of: name, satisfy: { $0 &- UInt8(ascii: "a") < 26 || $0 &- UInt8(ascii: "0") < 10 || $0 == UInt8(ascii: "_") })
        else {
            return "stage name \(Self.quoted(name)) must match [a-z][a-z0-9_]* (lower-case letters, digits and underscores, starting with a letter)"
        }
        if bytes.count > limits.maxStageNameBytes {
            return "stage name \(Self.quoted(name)) is longer than \(limits.maxStageNameBytes) bytes"
        }
        return nil
    }

    /// A duration, as read from its decimal text, must be finite, non-negative and at most a day.
    /// The text is quoted in the problem cut to a short excerpt: a 20 MiB number must not become a
    /// 20 MiB answer (kept for a day under its `Idempotency-Key`).
    package func checkDuration(_ reading: DecimalSeconds.Reading, text whole: @autoclosure () -> String) -> Result<Int64, DurationProblem> {
        func text() -> String { Self.excerpt(whole()) }
        switch reading {
        case .nanoseconds(let value) where value < 0:
            return .failure(DurationProblem("must not be negative (got \(text()))"))
        case .nanoseconds(let value) where value > limits.maxDurationNanoseconds:
            return .failure(tooLong(text()))
        case .nanoseconds(let value):
            return .success(value)
        case .outOfRange(negative: true):
            return .failure(DurationProblem("must not be negative (got \(text()))"))
        case .outOfRange(negative: false):
            return .failure(tooLong(text()))
        case .invalid:
            return .failure(DurationProblem("must be a number of seconds (got \(text()))"))
        }
    }

    private func tooLong(_ text: String) -> DurationProblem {
        DurationProblem(
            "must be at most \(DecimalSeconds.format(nanoseconds: limits.maxDurationNanoseconds)) seconds (got \(text)); durations are in seconds, not milliseconds"
        )
    }

    /// A timestamp must lie within the retention and at most the allowed skew ahead of now.
    package func checkTimestamp(_ timestamp: Timestamp) -> String? {
        // Subtracting in 128 bits: clamped timestamps sit at the ends of the 64-bit range.
        let ahead = Int128(timestamp.nanoseconds) - Int128(now.nanoseconds)
        if ahead > Int128(limits.maxFutureSkewNanoseconds) {
            return "is \(describeGap(ahead)) in the future (at most \(describeGap(Int128(limits.maxFutureSkewNanoseconds))) is allowed; check the client's clock)"
        }
        if -ahead > Int128(limits.maxAgeNanoseconds) {
            return "is \(describeGap(-ahead)) old, older than the retention of \(describeGap(Int128(limits.maxAgeNanoseconds)))"
        }
        return nil
    }

    private func describeGap(_ nanoseconds: Int128) -> String {
        let week: Int128 = 7 * 86_400 * 1_000_000_000
        return nanoseconds > week ? "more than a week" : DurationText.format(seconds: Int64(nanoseconds / 1_000_000_000))
    }

    /// True when every UTF-8 byte of `text` satisfies `predicate`, read from contiguous storage.
    static func allBytes(of text: String, satisfy predicate: (UInt8) -> Bool) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            for byte in bytes where !predicate(byte) { return false }
            return true
        }
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    static func hex(_ value: UInt32) -> String {
        String(value, radix: 16, uppercase: true).leftPadded(to: 4)
    }

    /// A value quoted for an error message, shortened and with control characters made visible.
    /// `text` whole when short, else its start and how long it was.
    static func excerpt(_ text: String, limit: Int = 40) -> String {
        let length = text.utf8.count
        guard length > limit else { return text }
        return "\(text.utf8.prefix(limit - 8).map { Character(Unicode.Scalar($0 < 0x80 ? $0 : UInt8(ascii: "?"))) }.reduce(into: "") { $0.append($1) })… (\(length) characters)"
    }

    static func quoted(_ value: String, limit: Int = 64) -> String {
        var text = ""
        for (offset, scalar) in value.unicodeScalars.enumerated() {
            if offset == limit {
                text += "…"
                break
            }
            text += isControl(scalar) ? "\\u{\(hex(scalar.value))}" : String(scalar)
        }
        return "'" + text + "'"
    }
}

/// A duration that broke a rule, in words.
package struct DurationProblem: Error, Equatable {
    /// What was wrong.
    package let message: String

    init(_ message: String) {
        self.message = message
    }
}
