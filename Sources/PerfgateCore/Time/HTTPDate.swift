/// The form of HTTP's `Date` header (RFC 9110, 5.6.7, IMF-fixdate): `Sun, 06 Nov 1994 08:49:37 GMT`.
package enum HTTPDate {
    private static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `timestamp` in IMF-fixdate, to the whole second (any fraction is dropped).
    package static func format(_ timestamp: Timestamp) -> String {
        let seconds = timestamp.seconds
        let days = seconds.floorDivided(by: 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = RFC3339.civilDate(daysSinceEpoch: days)
        // 1970-01-01 was a Thursday.
        let weekday = weekdays[Int(days - days.floorDivided(by: 7) * 7)]
        let pad = RFC3339.pad
        return weekday + ", " + pad(day, 2) + " " + months[Int(month) - 1] + " " + pad(year, 4) + " "
            + pad(secondOfDay / 3600, 2) + ":" + pad(secondOfDay / 60 % 60, 2) + ":" + pad(secondOfDay % 60, 2) + " GMT"
    }
}
