/// Reads a URL query string into name-value pairs, in order, percent-decoded.
///
/// Strict where browsers are lenient: a malformed `%` escape, invalid UTF-8 or a control
/// character is an error that names the parameter, never a silently mangled value.
package enum QueryString {
    /// The pairs of `query` (the text after `?`); `+` decodes to a space.
    package static func parse(_ query: String) throws(QueryStringError) -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = []
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try decode(parts[0], what: "parameter name")
            let value = parts.count > 1 ? try decode(parts[1], what: "value of \(name)") : ""
            guard !name.isEmpty else { throw QueryStringError("a parameter has no name") }
            pairs.append((name, value))
        }
        return pairs
    }

    private static func decode(_ text: Substring, what: String) throws(QueryStringError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw QueryStringError("the \(what) has a malformed %-escape (use %XX with two hex digits)")
                }
                bytes.append(high << 4 | low)
            default:
                bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw QueryStringError("the \(what) is not valid UTF-8 once decoded")
        }
        if decoded.unicodeScalars.contains(where: EventRules.isControl) {
            throw QueryStringError("the \(what) contains a control character")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A query string that cannot be read, and why.
package struct QueryStringError: Error, Equatable, Sendable {
    /// What is wrong.
    package let message: String

    init(_ message: String) {
        self.message = message
    }
}
