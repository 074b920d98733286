/// JSON text that cannot be read, with the byte offset where reading stopped.
package struct JSONSyntaxError: Error, Equatable, Sendable {
    /// Zero-based byte offset into the text.
    package var offset: Int
    /// What was expected or found, in words.
    package var message: String

    /// An error at a byte offset.
    package init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }
}

/// A line and column (both one-based, the column counted in bytes) for a byte offset.
package struct TextPosition: Equatable, Sendable, CustomStringConvertible {
    /// One-based line number.
    package var line: Int
    /// One-based column, in bytes.
    package var column: Int

    /// The position of `offset` within `bytes`.
    package init(offset: Int, in bytes: UnsafeBufferPointer<UInt8>) {
        var line = 1
        var lineStart = 0
        for index in 0..<min(offset, bytes.count) where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        self.line = line
        self.column = offset - lineStart + 1
    }

    package var description: String { "line \(line), column \(column)" }
}
