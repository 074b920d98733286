/// Writes exposition text through a raw pointer into room the caller reserved and sized.
///
/// The hot loop of a scrape: every histogram line is a few copies and an integer. The caller
/// reserves an upper bound of what it will write and checks the end against it afterwards.
struct LineCursor {
    /// Where the next byte goes.
    private(set) var position: UnsafeMutablePointer<UInt8>

    /// The most bytes `seconds` writes: a sign, 39 digits of Int128 seconds, a point, nine decimals.
    static let longestSeconds = 64

    init(_ start: UnsafeMutablePointer<UInt8>) {
        position = start
    }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        position.pointee = value
        position += 1
    }

    @inline(__always)
    mutating func copy(_ source: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        guard let base = source.baseAddress, !range.isEmpty else { return }
        position.update(from: base + range.lowerBound, count: range.count)
        position += range.count
    }

    /// `name{labels} `, or `name ` without labels.
    @inline(__always)
    mutating func seriesName(_ text: UnsafeBufferPointer<UInt8>, _ name: Range<Int>, labels: UnsafeBufferPointer<UInt8>) {
        copy(text, name)
        if !labels.isEmpty {
            byte(UInt8(ascii: "{"))
            copy(labels, 0..<labels.count)
            byte(UInt8(ascii: "}"))
        }
        byte(UInt8(ascii: " "))
    }

    /// An integer in decimal, without making a `String`.
    @inline(__always)
    mutating func decimal(_ value: UInt64) {
        if value < 10 {
            byte(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        rest = value
        for offset in stride(from: digits - 1, through: 0, by: -1) {
            position[offset] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        }
        position += digits
    }

    /// Nanoseconds as decimal seconds with no trailing zeros, as `DecimalSeconds.format` writes them.
    mutating func seconds(nanoseconds: Int128) {
        let magnitude = nanoseconds.magnitude
        guard magnitude / 1_000_000_000 <= UInt64.max else {
            var text = DecimalSeconds.format(nanoseconds: nanoseconds)
            text.withUTF8 { copy($0, 0..<$0.count) }
            return
        }
        if nanoseconds < 0 { byte(UInt8(ascii: "-")) }
        decimal(UInt64(magnitude / 1_000_000_000))
        var fraction = UInt64(magnitude % 1_000_000_000)
        guard fraction != 0 else { return }
        var width = 9
        while fraction % 10 == 0 {
            fraction /= 10
            width -= 1
        }
        byte(UInt8(ascii: "."))
        // Leading zeros of the fraction, then its digits.
        var scale: UInt64 = 1
        for _ in 1..<width { scale *= 10 }
        while scale > fraction {
            byte(UInt8(ascii: "0"))
            scale /= 10
        }
        decimal(fraction)
    }
}
