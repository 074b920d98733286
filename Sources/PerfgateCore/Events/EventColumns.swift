/// The valid events of one body, stored compactly: label values and stage names are numbers
/// into tables shared by the whole body, and all stages sit in one array.
///
/// This is what ingest aggregates from. A batch of a thousand events with a handful of distinct
/// endpoints, providers and models makes a handful of `String`s, not thousands.
public struct EventColumns: Sendable {
    /// One event: its labels as numbers into `labels`, its stages as a range of `stages`.
    public struct Event: Sendable {
        public var endpoint: Int32
        public var provider: Int32
        public var model: Int32
        public var timestamp: Timestamp
        public var stages: Range<Int>
    }

    /// One stage of an event: its name as a number into `stageNames`.
    public struct StageValue: Sendable {
        public var name: Int32
        public var nanoseconds: Int64
    }

    /// Endpoint, provider and model values.
    public internal(set) var labels = InternTable()
    /// Stage names.
    public internal(set) var stageNames = InternTable()
    /// The events, in body order.
    public internal(set) var events: [Event] = []
    /// The stages of every event, event after event.
    public internal(set) var stages: [StageValue] = []
    private var unknownLabel: Int32?

    /// No events.
    public init() {}

    /// The number of the label value `unknown`, which stands in for an absent provider or model.
    mutating func unknown(rule: (String) -> String?) -> Int32 {
        if let unknownLabel { return unknownLabel }
        let number = labels.intern("unknown", rule: rule)
        unknownLabel = number
        return number
    }

    /// The events with their strings, for tests and tools; ingest does not need them.
    public func timingEvents() -> [TimingEvent] {
        events.map { event in
            TimingEvent(
                endpoint: labels.strings[Int(event.endpoint)],
                provider: labels.strings[Int(event.provider)],
                model: labels.strings[Int(event.model)],
                stages: stages[event.stages].map { Stage(name: stageNames.strings[Int($0.name)], nanoseconds: $0.nanoseconds) },
                timestamp: event.timestamp
            )
        }
    }
}
