/// A parsed JSON document, for small inputs such as configuration files and test assertions.
///
/// Numbers keep their text so nothing is lost to floating point before the caller decides.
package indirect enum JSONValue: Equatable, Sendable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// Parses a whole document; trailing non-whitespace is an error.
    package static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(bytes: buffer)
            do {
                let value = try read(&scanner, depth: 0)
                scanner.skipWhitespace()
                guard scanner.isAtEnd else { throw scanner.error("unexpected data after the JSON value") }
                return value
            } catch let error as JSONSyntaxError {
                throw JSONValueError(message: "invalid JSON at \(TextPosition(offset: error.offset, in: buffer)): \(error.message)")
            }
        }
    }

    /// Parses a whole document from text.
    package static func parse(_ text: String) throws -> JSONValue {
        try parse(Array(text.utf8))
    }

    /// A value `depth` levels deep: nesting is bounded as the scanner bounds it when it skips,
    /// so a hostile body is an error, never a stack overflow.
    private static func read(_ scanner: inout JSONScanner, depth: Int) throws -> JSONValue {
        let kind = try scanner.peekKind()
        if kind == .object || kind == .array, depth >= scanner.maximumDepth {
            throw scanner.error("nesting deeper than \(scanner.maximumDepth) levels")
        }
        switch kind {
        case .object:
            var members: [(String, JSONValue)] = []
            try scanner.readObject { key, _, scanner in members.append((key, try read(&scanner, depth: depth + 1))) }
            return .object(members)
        case .array:
            var elements: [JSONValue] = []
            try scanner.readArray { _, scanner in elements.append(try read(&scanner, depth: depth + 1)) }
            return .array(elements)
        case .string:
            return .string(try scanner.readString())
        case .number:
            switch try scanner.readNumber() {
            case .finite(let range): return .number(String(decoding: UnsafeBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self))
            case .notANumber: return .number("NaN")
            case .infinity(let negative): return .number(negative ? "-Infinity" : "Infinity")
            }
        case .bool:
            return .bool(try scanner.readBool())
        case .null:
            try scanner.readNull()
            return .null
        }
    }

    /// The member named `key` of an object.
    package subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// The element at `index` of an array.
    package subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The text of a string value.
    package var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// A number value as a Double.
    package var doubleValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    /// The elements of an array value.
    package var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The members of an object value, in document order.
    package var objectMembers: [(String, JSONValue)]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// Scalars as the text a command-line flag would carry; nil for objects and null.
    package var scalarText: String? {
        switch self {
        case .string(let text), .number(let text): text
        case .bool(let value): value ? "true" : "false"
        case .array(let elements):
            elements.allSatisfy { $0.scalarText != nil } ? elements.compactMap(\.scalarText).joined(separator: ",") : nil
        case .object, .null: nil
        }
    }

    package static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.array(let a), .array(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.null, .null): true
        default: false
        }
    }
}

/// A document `JSONValue.parse` could not read.
package struct JSONValueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Where and why.
    package let message: String
    package var description: String { message }
}
