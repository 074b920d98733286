/// The kinds of JSON value, as seen from their first byte.
package enum JSONValueKind: Equatable, Sendable {
    case object, array, string, number, bool, null

    /// The kind in words, for error messages ("got an array").
    package var noun: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

/// A number token: its text, or one of the non-finite words some encoders write.
package enum JSONNumber: Equatable, Sendable {
    /// The byte range of a number in the JSON grammar.
    case finite(Range<Int>)
    /// `NaN`, as Python's `json` module writes it by default.
    case notANumber
    /// `Infinity` or `-Infinity`.
    case infinity(negative: Bool)
}

/// Reads JSON text token by token, without building a tree, and says where it stopped on error.
///
/// The scanner accepts RFC 8259 JSON plus the words `NaN`, `Infinity` and `-Infinity` in
/// number position: Python's `json.dumps` writes them, and a duration of `NaN` deserves a
/// per-event error naming the field, not a rejected body. Strings must be valid UTF-8.
/// The buffer must outlive the scanner.
package struct JSONScanner {
    /// The text being read.
    package let bytes: UnsafeBufferPointer<UInt8>
    /// The offset of the next unread byte.
    package private(set) var position: Int
    /// How deep `skipValue` may nest before it refuses the text.
    package let maximumDepth: Int

    /// A scanner at the start of `bytes`.
    package init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int = 64) {
        self.bytes = bytes
        self.position = 0
        self.maximumDepth = maximumDepth
    }

    /// A scanner over `bytes[range]`, reporting offsets relative to the whole buffer.
    package init(bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>, maximumDepth: Int = 64) {
        self.bytes = UnsafeBufferPointer(rebasing: bytes[..<range.upperBound])
        self.position = range.lowerBound
        self.maximumDepth = maximumDepth
    }

    /// True when only the end of the text remains.
    package var isAtEnd: Bool { position >= bytes.count }

    /// Skips spaces, tabs, line feeds and carriage returns.
    package mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    /// The next byte after whitespace, without consuming it.
    package mutating func peekByte() -> UInt8? {
        skipWhitespace()
        return position < bytes.count ? bytes[position] : nil
    }

    /// Consumes `byte` after whitespace if it is next.
    package mutating func consume(_ byte: UInt8) -> Bool {
        guard peekByte() == byte else { return false }
        position += 1
        return true
    }

    /// Consumes `byte` after whitespace, or fails saying what was expected.
    package mutating func expect(_ byte: UInt8, _ expectation: @autoclosure () -> String) throws(JSONSyntaxError) {
        guard consume(byte) else { throw error(expected: expectation()) }
    }

    /// The kind of the next value, after whitespace.
    package mutating func peekKind() throws(JSONSyntaxError) -> JSONValueKind {
        guard let byte = peekByte() else { throw error("unexpected end of input, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "N"), UInt8(ascii: "I"): return .number
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        default: throw error("unexpected \(describe(byte)), expected a value")
        }
    }

    // MARK: Objects and arrays

    /// Reads an object, calling `member` with each key; `member` must read or skip the value.
    package mutating func readObject(
        _ member: (String, Int, inout JSONScanner) throws -> Void
    ) throws {
        try readObjectKeys { key, keyOffset, scanner in
            // Keys were checked to be UTF-8 when they were read.
            try member(String(decoding: key, as: UTF8.self), keyOffset, &scanner)
        }
    }

    /// Reads an object, calling `member` with the UTF-8 bytes of each key (valid only during the
    /// call) and the key's offset; `member` must read or skip the value. No `String` is made.
    package mutating func readObjectKeys(
        _ member: (UnsafeBufferPointer<UInt8>, Int, inout JSONScanner) throws -> Void
    ) throws {
        try expect(UInt8(ascii: "{"), "'{'")
        if consume(UInt8(ascii: "}")) { return }
        repeat {
            guard peekByte() == UInt8(ascii: "\"") else {
                throw error(expected: "a member name in double quotes")
            }
            let keyOffset = position
            switch try readStringToken() {
            case .slice(let range, let ascii):
                let key = UnsafeBufferPointer(rebasing: bytes[range])
                if !ascii { try Self.checkUTF8(key, offset: keyOffset) }
                try expect(UInt8(ascii: ":"), "':' after the member name")
                try member(key, keyOffset, &self)
            case .unescaped(let decoded):
                try decoded.withUnsafeBufferPointer { key in
                    try Self.checkUTF8(key, offset: keyOffset)
                    try expect(UInt8(ascii: ":"), "':' after the member name")
                    try member(key, keyOffset, &self)
                }
            }
        } while try continueAfterElement(closing: UInt8(ascii: "}"), container: "an object member")
    }

    /// Reads an array, calling `element` with each index; `element` must read or skip the value.
    package mutating func readArray(_ element: (Int, inout JSONScanner) throws -> Void) throws {
        try expect(UInt8(ascii: "["), "'['")
        if consume(UInt8(ascii: "]")) { return }
        var index = 0
        repeat {
            try element(index, &self)
            index += 1
        } while try continueAfterElement(closing: UInt8(ascii: "]"), container: "an array element")
    }

    private mutating func continueAfterElement(closing: UInt8, container: String) throws(JSONSyntaxError) -> Bool {
        if consume(UInt8(ascii: ",")) { return true }
        if consume(closing) { return false }
        throw error(expected: "',' or '\(Character(Unicode.Scalar(closing)))' after \(container)")
    }

    // MARK: Scalars

    /// Reads a string value, decoding escapes; the text must be valid UTF-8.
    package mutating func readString() throws(JSONSyntaxError) -> String {
        // withStringBytes checked the text is UTF-8.
        try withStringBytes { text, _ in String(decoding: text, as: UTF8.self) }
    }

    /// Reads a string value and calls `body` with its UTF-8 bytes (escapes decoded; valid only
    /// during the call) and whether they are all ASCII. Text that is not valid UTF-8 is a syntax
    /// error at the opening quote. Only non-ASCII text is checked, so ASCII costs no check.
    package mutating func withStringBytes<Result>(
        _ body: (UnsafeBufferPointer<UInt8>, Bool) throws(JSONSyntaxError) -> Result
    ) throws(JSONSyntaxError) -> Result {
        skipWhitespace()
        let offset = position
        switch try readStringToken() {
        case .slice(let range, let ascii):
            let text = UnsafeBufferPointer(rebasing: bytes[range])
            if !ascii { try Self.checkUTF8(text, offset: offset) }
            return try body(text, ascii)
        case .unescaped(let decoded):
            return try decoded.withUnsafeBufferPointer { text throws(JSONSyntaxError) -> Result in
                let ascii = text.allSatisfy { $0 < 0x80 }
                if !ascii { try Self.checkUTF8(text, offset: offset) }
                return try body(text, ascii)
            }
        }
    }

    /// A string's text as read: a slice of the input when it has no escapes, else decoded bytes.
    /// UTF-8 validity is not yet checked.
    enum StringToken {
        case slice(Range<Int>, ascii: Bool)
        case unescaped([UInt8])
    }

    mutating func readStringToken() throws(JSONSyntaxError) -> StringToken {
        try expect(UInt8(ascii: "\""), "a string")
        let start = position
        var asciiOnly = true
        // Eight bytes at a time while none needs a look: the common case of plain ASCII text.
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while position + 8 <= bytes.count, !Self.needsLook(raw.loadUnaligned(fromByteOffset: position, as: UInt64.self)) {
                position += 8
            }
        }
        // Fast path: no escapes, so the string is a slice of the input.
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                position += 1
                return .slice(start..<(position - 1), ascii: asciiOnly)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw controlCharacterError() }
            if byte >= 0x80 { asciiOnly = false }
            position += 1
        }
        var decoded = Array(bytes[start..<position])
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return .unescaped(decoded)
            case UInt8(ascii: "\\"):
                try readEscape(into: &decoded)
            case 0..<0x20:
                throw controlCharacterError()
            default:
                decoded.append(byte)
                position += 1
            }
        }
        throw JSONSyntaxError(offset: start - 1, message: "unterminated string")
    }

    /// True when any of the eight bytes is a quote, a backslash, a control character or
    /// non-ASCII (bit tricks that may also flag a neighbour, never miss one; then the byte loop decides).
    @inline(__always)
    private static func needsLook(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ value: UInt64) -> Bool { (value &- ones) & ~value & highs != 0 }
        let control = (word &- ones &* 0x20) & ~word & highs
        return word & highs != 0 || control != 0
            || hasZeroByte(word ^ (ones &* UInt64(UInt8(ascii: "\""))))
            || hasZeroByte(word ^ (ones &* UInt64(UInt8(ascii: "\\"))))
    }

    private static func checkUTF8(_ text: UnsafeBufferPointer<UInt8>, offset: Int) throws(JSONSyntaxError) {
        guard String(validating: text, as: UTF8.self) != nil else { throw JSONSyntaxError(offset: offset, message: "string is not valid UTF-8") }
    }

    private func controlCharacterError() -> JSONSyntaxError {
        JSONSyntaxError(
            offset: position,
            message: "control character \(describe(bytes[position])) inside a string (escape it, e.g. \\n)"
        )
    }

    private mutating func readEscape(into decoded: inout [UInt8]) throws(JSONSyntaxError) {
        let escapeOffset = position
        position += 1
        guard position < bytes.count else { throw JSONSyntaxError(offset: escapeOffset, message: "unterminated string") }
        let letter = bytes[position]
        position += 1
        switch letter {
        case UInt8(ascii: "\""): decoded.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): decoded.append(UInt8(ascii: "\\"))
        case UInt8(ascii: "/"): decoded.append(UInt8(ascii: "/"))
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try readHexQuad(escapeOffset: escapeOffset)
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low surrogate.
                guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                    bytes[position + 1] == UInt8(ascii: "u")
                else { throw JSONSyntaxError(offset: escapeOffset, message: "unpaired UTF-16 surrogate in \\u escape") }
                position += 2
                let low = try readHexQuad(escapeOffset: escapeOffset)
                guard (0xDC00..<0xE000).contains(low) else {
                    throw JSONSyntaxError(offset: escapeOffset, message: "unpaired UTF-16 surrogate in \\u escape")
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw JSONSyntaxError(offset: escapeOffset, message: "unpaired UTF-16 surrogate in \\u escape")
            }
            decoded.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
        default:
            throw JSONSyntaxError(offset: escapeOffset, message: "invalid escape \\\(describeRaw(letter)) in string")
        }
    }

    private mutating func readHexQuad(escapeOffset: Int) throws(JSONSyntaxError) -> UInt32 {
        guard position + 4 <= bytes.count else {
            throw JSONSyntaxError(offset: escapeOffset, message: "\\u escape needs four hex digits")
        }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw JSONSyntaxError(offset: escapeOffset, message: "\\u escape needs four hex digits")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    /// Reads a number token, checking the JSON number grammar.
    package mutating func readNumber() throws(JSONSyntaxError) -> JSONNumber {
        skipWhitespace()
        if position < bytes.count, bytes[position] &- UInt8(ascii: "0") >= 10 {
            if matchWord("NaN") { return .notANumber }
            if matchWord("Infinity") { return .infinity(negative: false) }
            if matchWord("-Infinity") { return .infinity(negative: true) }
        }
        let start = position
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        let integerStart = position
        let integerDigits = skipDigits()
        guard integerDigits > 0 else { throw error(expected: "a digit") }
        if integerDigits > 1, bytes[integerStart] == UInt8(ascii: "0") {
            throw JSONSyntaxError(offset: integerStart, message: "numbers must not have leading zeros")
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard skipDigits() > 0 else { throw error(expected: "a digit after the decimal point") }
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard skipDigits() > 0 else { throw error(expected: "a digit in the exponent") }
        }
        return .finite(start..<position)
    }

    /// Reads a number token through `read` when `read` takes it whole: `read` gets the text from
    /// the token's first byte on and returns a value and how many bytes it read, or nil. The
    /// token must end there (at a delimiter or the end of the text). Otherwise nothing is read
    /// and the result is nil, so the caller can fall back to `readNumber`.
    @inline(__always)
    package mutating func readNumber<Value>(
        using read: (UnsafeBufferPointer<UInt8>) -> (Value, Int)?
    ) -> (value: Value, range: Range<Int>)? {
        skipWhitespace()
        guard position < bytes.count, let (value, length) = read(UnsafeBufferPointer(rebasing: bytes[position...])) else { return nil }
        let end = position + length
        if end < bytes.count {
            switch bytes[end] {
            case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: break
            default: return nil
            }
        }
        defer { position = end }
        return (value, position..<end)
    }

    private mutating func skipDigits() -> Int {
        let start = position
        while position < bytes.count, bytes[position] &- UInt8(ascii: "0") < 10 { position += 1 }
        return position - start
    }

    /// Reads `true` or `false`.
    package mutating func readBool() throws(JSONSyntaxError) -> Bool {
        skipWhitespace()
        if matchWord("true") { return true }
        if matchWord("false") { return false }
        throw error(expected: "true or false")
    }

    /// Reads `null`.
    package mutating func readNull() throws(JSONSyntaxError) {
        skipWhitespace()
        guard matchWord("null") else { throw error(expected: "null") }
    }

    private mutating func matchWord(_ word: StaticString) -> Bool {
        let length = word.utf8CodeUnitCount
        guard position + length <= bytes.count else { return false }
        let matches = word.withUTF8Buffer { expected in
            (0..<length).allSatisfy { bytes[position + $0] == expected[$0] }
        }
        guard matches else { return false }
        // A word must end at a delimiter: `nullx` or `truely` is not JSON.
        let end = position + length
        if end < bytes.count, isWordByte(bytes[end]) { return false }
        position = end
        return true
    }

    private func isWordByte(_ byte: UInt8) -> Bool {
        (byte | 0x20) &- UInt8(ascii: "a") < 26 || byte &- UInt8(ascii: "0") < 10 || byte == UInt8(ascii: "_")
    }

    /// Reads and discards one value of any kind, checking its syntax.
    package mutating func skipValue() throws {
        try skipValue(depth: 0)
    }

    private mutating func skipValue(depth: Int) throws {
        switch try peekKind() {
        case .object:
            guard depth < maximumDepth else { throw error("nesting deeper than \(maximumDepth) levels") }
            try readObject { _, _, scanner in try scanner.skipValue(depth: depth + 1) }
        case .array:
            guard depth < maximumDepth else { throw error("nesting deeper than \(maximumDepth) levels") }
            try readArray { _, scanner in try scanner.skipValue(depth: depth + 1) }
        case .string: try withStringBytes { _, _ in }
        case .number: _ = try readNumber()
        case .bool: _ = try readBool()
        case .null: try readNull()
        }
    }

    // MARK: Errors

    /// An error at the current position, saying what is wrong.
    package func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: position, message: message)
    }

    /// An error at the current position saying what was expected and what was found.
    package func error(expected: String) -> JSONSyntaxError {
        guard position < bytes.count else {
            return JSONSyntaxError(offset: position, message: "unexpected end of input, expected \(expected)")
        }
        return JSONSyntaxError(offset: position, message: "expected \(expected), found \(describe(bytes[position]))")
    }

    private func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
    }

    private func describeRaw(_ byte: UInt8) -> String {
        byte >= 0x21 && byte < 0x7F ? String(Character(Unicode.Scalar(byte))) : "(0x\(String(byte, radix: 16)))"
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
