import PerfgateCore

/// The windows the status page offers, and how finely each is charted.
enum StatusWindow: String, CaseIterable, Sendable {
    case fiveMinutes = "5m"
    case oneHour = "1h"
    case oneDay = "24h"

    var minutes: Int64 {
        switch self {
        case .fiveMinutes: 5
        case .oneHour: 60
        case .oneDay: 1440
        }
    }

    /// Minutes per chart point: 5, 60 and 96 points.
    var stepMinutes: Int64 {
        switch self {
        case .fiveMinutes, .oneHour: 1
        case .oneDay: 15
        }
    }

    /// How the page names it.
    var label: String {
        switch self {
        case .fiveMinutes: "5 min"
        case .oneHour: "1 hour"
        case .oneDay: "24 hours"
        }
    }

    /// The minutes of the window ending at `now`, and of the same window an hour earlier.
    func minutes(at now: Timestamp) -> ClosedRange<Minute> {
        now.minute.advanced(by: -(minutes - 1))...now.minute
    }

    /// The windows whose comparison an hour earlier fits in a retention of `retentionMinutes`.
    static func available(retentionMinutes: Int64) -> [StatusWindow] {
        allCases.filter { $0.minutes + 60 <= retentionMinutes }
    }
}
