/// Reads and writes durations the way Prometheus writes them: `90s`, `5m`, `1h30m`, `1d`, `1w`.
package enum DurationText {
    /// Seconds in a duration text, or nil when the text is not one.
    ///
    /// Units are `s`, `m`, `h`, `d` and `w`, largest first, each at most once; a bare number is seconds.
    package static func seconds(_ text: String) -> Int64? {
        guard !text.isEmpty else { return nil }
        if let plain = Int64(text) { return plain >= 0 ? plain : nil }
        let units: [(Character, Int64)] = [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)]
        var total: Int64 = 0
        var number = ""
        var nextUnit = 0
        for character in text {
            if character.isASCII, character.isNumber {
                number.append(character)
                continue
            }
            guard let unitIndex = units[nextUnit...].firstIndex(where: { $0.0 == character }),
                let value = Int64(number), value <= 10_000_000
            else { return nil }
            total += value * units[unitIndex].1
            number = ""
            nextUnit = unitIndex + 1
        }
        return number.isEmpty ? total : nil
    }

    /// Whole minutes in a duration text of at least a minute (`5m`, `1h30m`), or nil when the text
    /// is not a duration or not a whole number of minutes; minute windows take nothing finer.
    package static func wholeMinutes(_ text: String) -> Int64? {
        guard let seconds = seconds(text), seconds >= 60, seconds % 60 == 0 else { return nil }
        return seconds / 60
    }

    /// The shortest text for a number of seconds: `300` → `5m`, `5400` → `1h30m`, `0` → `0s`.
    package static func format(seconds: Int64) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var text = ""
        for (unit, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            text += String(rest / size) + unit
            rest %= size
        }
        return text
    }
}
