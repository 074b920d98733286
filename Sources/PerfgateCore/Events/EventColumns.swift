/// The valid events of one body, stored compactly: label values and stage names are numbers
/// into tables shared by the whole body, and all stages sit in one array.
///
/// This is what ingest aggregates from. A batch of a thousand events with a handful of distinct
/// endpoints, providers and models makes a handful of `String`s, not thousands.
package struct EventColumns: Sendable {
    /// One event: its labels as numbers into `labels`, its stages as a range of `stages`.
    package struct Event: Sendable {
        package var endpoint: Int32
        package var provider: Int32
        package var model: Int32
        package var timestamp: Timestamp
        package var stages: Range<Int>
    }

    /// One stage of an event: its name as a number into `stageNames`.
    package struct StageValue: Sendable {
        package var name: Int32
        package var nanoseconds: Int64
    }

    /// Endpoint, provider and model values.
    package internal(set) var labels = InternTable()
    /// Stage names.
    package internal(set) var stageNames = InternTable()
    /// The events, in body order.
    package internal(set) var events: [Event] = []
    /// The stages of every event, event after event.
    package internal(set) var stages: [StageValue] = []
    private var unknownLabel: Int32?

    /// No events.
    package init() {}

    /// Empties the columns, keeping their storage for the next body.
    mutating func removeAll() {
        labels.removeAll()
        stageNames.removeAll()
        events.removeAll(keepingCapacity: true)
        stages.removeAll(keepingCapacity: true)
        unknownLabel = nil
    }

    /// The number of the label value `unknown`, which stands in for an absent provider or model.
    mutating func unknown(rule: (String) -> String?) -> Int32 {
        if let unknownLabel { return unknownLabel }
        let number = labels.intern("unknown", rule: rule)
        unknownLabel = number
        return number
    }
}
