/// Converts decimal text of seconds to integer nanoseconds and back, exactly.
///
/// Durations are kept as integer nanoseconds so that bucket boundaries compare exactly
/// (`0.1` is precisely the `le="0.1"` bound) and sums do not drift with the order of
/// addition: `_sum` is the exact total of what was posted, rounded once per value.
package enum DecimalSeconds {
    /// The result of reading a decimal number of seconds.
    package enum Reading: Equatable, Sendable {
        /// The value in nanoseconds, rounded half to even at the ninth decimal.
        case nanoseconds(Int64)
        /// The magnitude does not fit in 64-bit nanoseconds (about 292 years).
        case outOfRange(negative: Bool)
        /// Not a decimal number.
        case invalid
    }

    /// Reads a JSON-grammar number (`-1.25e3`) of seconds.
    package static func read(_ text: some StringProtocol) -> Reading {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { read(UnsafeBufferPointer($0)) }
    }

    /// Reads a JSON-grammar number of seconds from UTF-8 bytes.
    package static func read(_ bytes: UnsafeBufferPointer<UInt8>) -> Reading {
        if let plain = readPlain(bytes) { return plain }
        var position = 0
        let count = bytes.count
        func digit(at index: Int) -> UInt64? {
            guard index < count else { return nil }
            let value = bytes[index] &- UInt8(ascii: "0")
            return value < 10 ? UInt64(value) : nil
        }

        var negative = false
        if position < count, bytes[position] == UInt8(ascii: "-") {
            negative = true
            position += 1
        }

        // Up to 19 significant digits are kept; the first dropped digit and whether any
        // later one is non-zero decide the rounding.
        var mantissa: UInt64 = 0
        var significant = 0
        var exponent = 0
        var firstDropped: UInt64? = nil
        var restNonZero = false
        func take(_ d: UInt64, fractional: Bool) {
            if significant == 0 && d == 0 {
                if fractional { exponent -= 1 }
                return
            }
            if significant < 19 {
                mantissa = mantissa * 10 + d
                significant += 1
                if fractional { exponent -= 1 }
            } else {
                if firstDropped == nil { firstDropped = d } else if d != 0 { restNonZero = true }
                if !fractional { exponent += 1 }
            }
        }

        var integerDigits = 0
        while let d = digit(at: position) {
            take(d, fractional: false)
            integerDigits += 1
            position += 1
        }
        guard integerDigits > 0 else { return .invalid }
        if integerDigits > 1 && bytes[position - integerDigits] == UInt8(ascii: "0") { return .invalid }

        if position < count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            var fractionDigits = 0
            while let d = digit(at: position) {
                take(d, fractional: true)
                fractionDigits += 1
                position += 1
            }
            guard fractionDigits > 0 else { return .invalid }
        }

        if position < count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            var exponentNegative = false
            if position < count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                exponentNegative = bytes[position] == UInt8(ascii: "-")
                position += 1
            }
            var written = 0
            var digits = 0
            while let d = digit(at: position) {
                // Saturate: any exponent past a few hundred already decides the result.
                if written < 100_000 { written = written * 10 + Int(d) }
                digits += 1
                position += 1
            }
            guard digits > 0 else { return .invalid }
            exponent += exponentNegative ? -written : written
        }
        guard position == count else { return .invalid }

        if mantissa == 0 { return .nanoseconds(0) }
        let scale = exponent + 9
        if scale >= 0 {
            guard scale <= 18 else { return .outOfRange(negative: negative) }
            var (value, overflow) = mantissa.multipliedReportingOverflow(by: powerOfTen(scale))
            if !overflow, scale == 0, let dropped = firstDropped,
                dropped > 5 || (dropped == 5 && (restNonZero || value & 1 == 1))
            {
                (value, overflow) = value.addingReportingOverflow(1)
            }
            guard !overflow, value <= UInt64(Int64.max) else { return .outOfRange(negative: negative) }
            return .nanoseconds(negative ? -Int64(value) : Int64(value))
        }
        let shift = -scale
        if shift > 19 { return .nanoseconds(0) }
        let divisor = powerOfTen(shift)
        var quotient = mantissa / divisor
        let remainder = mantissa % divisor
        let half = divisor / 2
        let sticky = firstDropped.map { $0 != 0 } ?? false || restNonZero
        if remainder > half || (remainder == half && (sticky || quotient & 1 == 1)) {
            quotient += 1
        }
        return .nanoseconds(negative ? -Int64(quotient) : Int64(quotient))
    }

    /// The shape nearly every duration has, read without rounding: `[-]d[.d]` with at most nine
    /// digits on each side of the point and no exponent. Nil for anything else.
    @inline(__always)
    private static func readPlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Reading? {
        guard let (nanoseconds, length) = readPlainPrefix(bytes), length == bytes.count else { return nil }
        return .nanoseconds(nanoseconds)
    }

    /// Reads the plain shape `[-]d[.d]` (at most nine digits on each side, no leading zeros) at
    /// the start of `bytes`: its nanoseconds and how many bytes it took, or nil when the text
    /// does not start with that shape. What follows is the caller's to check.
    @inline(__always)
    package static func readPlainPrefix(_ bytes: UnsafeBufferPointer<UInt8>) -> (nanoseconds: Int64, length: Int)? {
        let count = bytes.count
        var position = 0
        let negative = count > 0 && bytes[0] == UInt8(ascii: "-")
        if negative { position = 1 }
        let integerStart = position
        var integer: UInt64 = 0
        while position < count, bytes[position] &- UInt8(ascii: "0") < 10 {
            guard position - integerStart < 9 else { return nil }
            integer = integer * 10 + UInt64(bytes[position] &- UInt8(ascii: "0"))
            position += 1
        }
        let integerDigits = position - integerStart
        guard integerDigits > 0, integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { return nil }
        var fraction: UInt64 = 0
        var fractionDigits = 0
        if position < count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            while position < count, bytes[position] &- UInt8(ascii: "0") < 10 {
                guard fractionDigits < 9 else { return nil }
                fraction = fraction * 10 + UInt64(bytes[position] &- UInt8(ascii: "0"))
                fractionDigits += 1
                position += 1
            }
            guard fractionDigits > 0 else { return nil }
        }
        let value = Int64(integer * 1_000_000_000 + fraction * powerOfTen(9 - fractionDigits))
        return (negative ? -value : value, position)
    }

    /// Writes nanoseconds as decimal seconds with no trailing zeros: `1.697`, `0.0004`, `10`.
    package static func format(nanoseconds: Int128) -> String {
        let negative = nanoseconds < 0
        let magnitude = negative ? -nanoseconds : nanoseconds
        let whole = magnitude / 1_000_000_000
        var fraction = Int64(magnitude % 1_000_000_000)
        var text = negative ? "-" + String(whole) : String(whole)
        if fraction != 0 {
            var width = 9
            while fraction % 10 == 0 {
                fraction /= 10
                width -= 1
            }
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: width - digits.count) + digits
        }
        return text
    }

    /// Writes nanoseconds as decimal seconds with no trailing zeros.
    package static func format(nanoseconds: Int64) -> String {
        format(nanoseconds: Int128(nanoseconds))
    }

    private static func powerOfTen(_ exponent: Int) -> UInt64 {
        var result: UInt64 = 1
        for _ in 0..<exponent { result *= 10 }
        return result
    }
}
