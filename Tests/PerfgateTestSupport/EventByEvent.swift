import PerfgateCore

// A second, slower path from events to counts: one event at a time, with strings. Tests hold the
// batch path (columns of interned numbers, ColumnAggregation) to it; ingest never takes it.

extension EventDerivation {
    /// Calls `observe` once for each observation the event yields, with its series.
    package static func forEachObservation(of event: TimingEvent, _ observe: (SeriesKey, Int64) -> Void) {
        forEachObservation(stageCount: event.stages.count, stage: { (StageRole(name: event.stages[$0].name), event.stages[$0].nanoseconds) }) {
            metric, stage, nanoseconds in
            observe(seriesKey(metric, stage: stage.map { event.stages[$0].name }, endpoint: event.endpoint, provider: event.provider, model: event.model), nanoseconds)
        }
    }
}

extension RollupDelta {
    /// Adds an event's observations, each into its bucket of `layouts`.
    package mutating func add(_ event: TimingEvent, layouts: BucketLayouts) {
        let minute = event.timestamp.minute
        EventDerivation.forEachObservation(of: event) { series, nanoseconds in
            let layout = layouts[series.metric]
            var observed = HistogramCounts(bucketCount: layout.bucketCount)
            observed.observe(nanoseconds: nanoseconds, bucket: layout.bucketIndex(for: nanoseconds))
            add(observed, to: RollupKey(series: series, minute: minute), layouts: layouts)
        }
        addEvents(1)
    }
}

extension EventColumns {
    /// The events with their strings.
    package func timingEvents() -> [TimingEvent] {
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

extension DecodedBatch {
    /// The valid events with their strings.
    package var events: [TimingEvent] { columns.timingEvents() }
}
