/// Why one event of a batch was not applied: which event, which field, and what was wrong.
package struct EventRejection: Equatable, Sendable {
    /// The event's zero-based position in the batch.
    package var index: Int
    /// The field at fault, dotted for stages (`stages.backend_fetch`); empty for the event itself.
    package var field: String
    /// What was wrong, in words a client author can act on.
    package var problem: String
    /// The category, for the `perfgate_events_rejected_total{reason}` counter.
    package var reason: RejectionReason

    /// A rejection of event `index`.
    package init(index: Int, field: String, problem: String, reason: RejectionReason) {
        self.index = index
        self.field = field
        self.problem = problem
        self.reason = reason
    }

    /// The full message: `stages.backend_fetch: must not be negative (got -1)`.
    package var message: String {
        field.isEmpty ? problem : "\(field): \(problem)"
    }
}

/// Categories of per-event errors.
package enum RejectionReason: String, CaseIterable, Sendable {
    case notAnObject = "not_an_object"
    case missingField = "missing_field"
    case unknownField = "unknown_field"
    case duplicateField = "duplicate_field"
    case wrongType = "wrong_type"
    case invalidLabel = "invalid_label"
    case invalidStageName = "invalid_stage_name"
    case tooManyStages = "too_many_stages"
    case invalidDuration = "invalid_duration"
    case invalidTimestamp = "invalid_timestamp"
}
