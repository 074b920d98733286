import PerfgateCore
import Testing

@Suite struct JSONScannerTests {
    private func readString(_ json: String) throws -> String {
        let bytes = Array(json.utf8)
        return try bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(bytes: buffer)
            return try scanner.readString()
        }
    }

    private func skip(_ json: String, maximumDepth: Int = 64) throws {
        let bytes = Array(json.utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(bytes: buffer, maximumDepth: maximumDepth)
            try scanner.skipValue()
        }
    }

    @Test func decodesEveryEscape() throws {
        #expect(try readString(#""a\"b\\c\/d\b\f\n\r\t""#) == "a\"b\\c/d\u{8}\u{C}\n\r\t")
        #expect(try readString(#""\u00e9\u4e2d""#) == "é中")
        #expect(try readString(#""\ud83d\ude00""#) == "😀")
        #expect(try readString("\"héllo\"") == "héllo")
    }

    @Test(arguments: [
        (#""\ud83d""#, "unpaired UTF-16 surrogate"),
        (#""\ude00""#, "unpaired UTF-16 surrogate"),
        (#""\x41""#, "invalid escape"),
        (#""\u12""#, "four hex digits"),
        ("\"abc", "unterminated string"),
        ("\"a\nb\"", "control character"),
    ])
    func refusesBrokenStrings(json: String, reason: String) {
        #expect {
            _ = try readString(json)
        } throws: { error in
            (error as? JSONSyntaxError)?.message.contains(reason) == true
        }
    }

    @Test func refusesInvalidUTF8() {
        let bytes: [UInt8] = [0x22, 0x61, 0xFF, 0x62, 0x22]
        #expect(throws: JSONSyntaxError.self) {
            try bytes.withUnsafeBufferPointer { buffer in
                var scanner = JSONScanner(bytes: buffer)
                _ = try scanner.readString()
            }
        }
    }

    @Test func skipsNestedValuesAndStopsAtTheDepthLimit() throws {
        try skip(#"{"a": [1, 2.5e3, true, false, null, {"b": "c"}], "d": {}}"#)
        try skip(String(repeating: "[", count: 10) + String(repeating: "]", count: 10), maximumDepth: 10)
        #expect(throws: JSONSyntaxError.self) {
            try skip(String(repeating: "[", count: 11) + String(repeating: "]", count: 11), maximumDepth: 10)
        }
    }

    @Test(arguments: ["01", "1.", "-", "1e", "tru", "nul", "truex", "[1,]", "{\"a\":1,}", "{a:1}", "[1 2]", "'a'"])
    func refusesInvalidJSON(json: String) {
        #expect(throws: JSONSyntaxError.self) { try skip(json) }
    }

    @Test func readsNonFiniteWordsInNumberPosition() throws {
        let bytes = Array("[NaN, Infinity, -Infinity]".utf8)
        var numbers: [JSONNumber] = []
        try bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(bytes: buffer)
            try scanner.readArray { _, scanner in numbers.append(try scanner.readNumber()) }
        }
        #expect(numbers == [.notANumber, .infinity(negative: false), .infinity(negative: true)])
    }

    @Test func reportsLineAndColumn() throws {
        let bytes = Array("{\n  \"a\": 1\n  \"b\": 2}".utf8)
        bytes.withUnsafeBufferPointer { buffer in
            #expect(TextPosition(offset: 13, in: buffer) == TextPosition(line: 3, column: 3))
        }
    }

    /// A parsed document is bounded in depth like a skipped one: 100,000 brackets are an error
    /// naming the limit, not a stack overflow.
    @Test func parsedDocumentsAreBoundedInDepth() throws {
        for body in ["[" * 100_000, "{\"a\":" * 100_000] {
            #expect { _ = try JSONValue.parse(body) } throws: { "\($0)".contains("nesting deeper than 64 levels") }
        }
        let deepest = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try JSONValue.parse(deepest) != .null)
    }
}

extension TextPosition {
    init(line: Int, column: Int) {
        let bytes = Array(String(repeating: "\n", count: line - 1).utf8) + Array(repeating: UInt8(ascii: " "), count: column - 1)
        self = bytes.withUnsafeBufferPointer { TextPosition(offset: bytes.count, in: $0) }
    }
}

private func * (text: String, count: Int) -> String { String(repeating: text, count: count) }
