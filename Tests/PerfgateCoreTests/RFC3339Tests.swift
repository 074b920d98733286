import PerfgateCore
import Testing

@Suite struct RFC3339Tests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2026-11-29T04:00:00Z", 1_795_924_800_000_000_000),
        ("2026-11-29T05:00:00+01:00", 1_795_924_800_000_000_000),
        ("2026-11-28T23:30:00-04:30", 1_795_924_800_000_000_000),
        ("2026-11-29t04:00:00z", 1_795_924_800_000_000_000),
        ("2026-11-29 04:00:00Z", 1_795_924_800_000_000_000),
        ("2026-11-29T04:00:00.25Z", 1_795_924_800_250_000_000),
        ("2026-11-29T04:00:00.123456789123Z", 1_795_924_800_123_456_789),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000_000_000),
        ("1969-12-31T23:59:59Z", -1_000_000_000),
    ])
    func parsesTimestamps(text: String, nanoseconds: Int64) {
        #expect(RFC3339.parse(text) == Timestamp(nanoseconds: nanoseconds))
    }

    @Test(arguments: [
        "", "2026-11-29", "2026-11-29T04:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-31T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T04:60:00Z", "2026-11-29T04:00:00.Z",
        "2026-11-29T04:00:00+1:00", "2026-11-29T04:00:00Z ", "26-11-29T04:00:00Z", "2026-11-29T04:00:00+24:00",
    ])
    func refusesMalformedTimestamps(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test func clampsYearsBeyondSixtyFourBitNanoseconds() {
        #expect(RFC3339.parse("2999-01-01T00:00:00Z") == Timestamp(nanoseconds: .max))
        #expect(RFC3339.parse("1000-01-01T00:00:00Z") == Timestamp(nanoseconds: .min))
    }

    @Test func formatsInUTCWithAFractionOnlyWhenPresent() {
        #expect(RFC3339.format(Timestamp(nanoseconds: 1_795_924_800_000_000_000)) == "2026-11-29T04:00:00Z")
        #expect(RFC3339.format(Timestamp(nanoseconds: 1_795_924_800_250_000_000)) == "2026-11-29T04:00:00.25Z")
        #expect(RFC3339.format(Timestamp(nanoseconds: -1_000_000_000)) == "1969-12-31T23:59:59Z")
    }

    @Test func formatAndParseRoundTripAcrossCenturies() {
        for seconds in stride(from: Int64(-5_000_000_000), through: 5_000_000_000, by: 123_456_789) {
            let timestamp = Timestamp(seconds: seconds)
            #expect(RFC3339.parse(RFC3339.format(timestamp)) == timestamp)
        }
    }

    @Test func minutesFloorBeforeTheEpoch() {
        #expect(Timestamp(nanoseconds: -1).minute == Minute(index: -1))
        #expect(Timestamp(nanoseconds: 0).minute == Minute(index: 0))
        #expect(Timestamp(seconds: 119).minute == Minute(index: 1))
    }
}
