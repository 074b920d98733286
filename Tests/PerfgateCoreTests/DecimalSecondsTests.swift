import PerfgateCore
import Testing

@Suite struct DecimalSecondsTests {
    @Test(arguments: [
        ("0", 0), ("-0", 0), ("0.0", 0), ("1", 1_000_000_000), ("1.697", 1_697_000_000),
        ("0.1", 100_000_000), ("0.0011", 1_100_000), ("0.0004", 400_000), ("2.5E+2", 250_000_000_000),
        ("1e-3", 1_000_000), ("1E3", 1_000_000_000_000), ("123.456789012", 123_456_789_012),
        // Rounding at the ninth decimal is half to even, like Python's round().
        ("0.0000000005", 0), ("0.0000000015", 2), ("0.0000000025", 2), ("0.00000000250001", 3),
        ("0.0000000004999", 0), ("1.0000000005", 1_000_000_000), ("1.0000000015", 1_000_000_002),
        ("-1.5", -1_500_000_000), ("86400", 86_400_000_000_000),
        // More than 19 significant digits: the dropped digits still decide the rounding.
        ("1.23456789012345678901", 1_234_567_890), ("1234567890.1234567895", 1_234_567_890_123_456_790),
        ("0.00000000000000000000000001", 0), ("1e-30", 0),
    ] as [(String, Int64)])
    func readsExactNanoseconds(text: String, expected: Int64) {
        #expect(DecimalSeconds.read(text) == .nanoseconds(expected))
    }

    @Test(arguments: ["1e400", "9300000000", "100000000000000000000"])
    func flagsValuesTooLargeForNanoseconds(text: String) {
        #expect(DecimalSeconds.read(text) == .outOfRange(negative: false))
    }

    @Test func flagsHugeNegativeValues() {
        #expect(DecimalSeconds.read("-1e300") == .outOfRange(negative: true))
    }

    @Test(arguments: ["", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x10", "1 ", "NaN", "1.2.3", "--1"])
    func refusesTextOutsideTheJSONNumberGrammar(text: String) {
        #expect(DecimalSeconds.read(text) == .invalid)
    }

    @Test(arguments: [
        (Int128(0), "0"), (1_697_000_000, "1.697"), (400_000, "0.0004"), (10_000_000_000, "10"),
        (1, "0.000000001"), (-1_500_000_000, "-1.5"), (Int128(Int64.max) * 1_000_000_000, "9223372036854775807"),
    ] as [(Int128, String)])
    func writesDecimalSecondsWithoutTrailingZeros(nanoseconds: Int128, expected: String) {
        #expect(DecimalSeconds.format(nanoseconds: nanoseconds) == expected)
    }
}

@Suite struct DurationTextTests {
    @Test(arguments: [("5m", 300), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("1d", 86_400), ("1w", 604_800), ("300", 300), ("0s", 0)] as [(String, Int64)])
    func readsPrometheusDurations(text: String, seconds: Int64) {
        #expect(DurationText.seconds(text) == seconds)
    }

    @Test(arguments: ["", "5", "m", "5x", "1m1h", "1h1h", "-5m", "5m ", "1.5h"])
    func refusesMalformedDurations(text: String) {
        if text == "5" {
            #expect(DurationText.seconds(text) == 5)
        } else {
            #expect(DurationText.seconds(text) == nil)
        }
    }

    @Test func readsWholeMinutesOnly() {
        #expect(DurationText.wholeMinutes("1h30m") == 90)
        #expect(DurationText.wholeMinutes("120s") == 2)
        #expect(DurationText.wholeMinutes("90s") == nil)
        #expect(DurationText.wholeMinutes("30s") == nil)
        #expect(DurationText.wholeMinutes("soon") == nil)
    }

    @Test func writesTheShortestForm() {
        #expect(DurationText.format(seconds: 300) == "5m")
        #expect(DurationText.format(seconds: 5400) == "1h30m")
        #expect(DurationText.format(seconds: 90_000) == "1d1h")
        #expect(DurationText.format(seconds: 0) == "0s")
    }
}

@Suite struct DecimalSecondsAgreementTests {
    /// Plain decimals take a fast path; the same text with an `e0` exponent takes the
    /// general one. Both must agree on every value, including the rounding past nine decimals.
    @Test func plainAndExponentFormsAgree() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let integer = String(UInt64.random(in: 0..<1_000_000_000, using: &generator))
            let fractionDigits = Int.random(in: 0...11, using: &generator)
            let fraction = String((0..<fractionDigits).map { _ in Character(String(Int.random(in: 0...9, using: &generator))) })
            let negative = Bool.random(using: &generator) ? "-" : ""
            let plain = negative + integer + (fraction.isEmpty ? "" : "." + fraction)
            let exponent = plain + "e0"
            #expect(DecimalSeconds.read(plain) == DecimalSeconds.read(exponent), "\(plain) vs \(exponent)")
        }
    }
}
