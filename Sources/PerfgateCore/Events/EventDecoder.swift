/// Reads event objects from JSON, applying `EventRules` field by field.
///
/// Syntax errors throw (the whole body is refused); field errors become `EventRejection`s for
/// that event only, and reading carries on with the next event.
public struct EventDecoder: Sendable {
    /// The field rules in force.
    public let rules: EventRules

    /// The fields an event object may hold.
    public static let fieldNames = ["endpoint", "provider", "model", "stages", "timestamp"]

    /// A decoder applying `rules`.
    public init(rules: EventRules) {
        self.rules = rules
    }

    /// Reads one value that should be an event object. Returns the event, or nil after
    /// appending what was wrong with it to `rejections`.
    public func decodeEvent(
        _ scanner: inout JSONScanner,
        index: Int,
        rejections: inout [EventRejection]
    ) throws -> TimingEvent? {
        let kind = try scanner.peekKind()
        guard kind == .object else {
            try scanner.skipValue()
            rejections.append(
                EventRejection(index: index, field: "", problem: "must be a JSON object, got \(kind.noun)", reason: .notAnObject)
            )
            return nil
        }
        var fields = EventFields(index: index)
        try scanner.readObject { key, _, scanner in
            try decodeMember(key, &scanner, into: &fields)
        }
        return finish(fields, rejections: &rejections)
    }

    /// Reads the value of one member of an event object into `fields`.
    public func decodeMember(_ key: String, _ scanner: inout JSONScanner, into fields: inout EventFields) throws {
        guard let field = Field(rawValue: key) else {
            try scanner.skipValue()
            fields.reject(
                EventQuoted.field(key),
                "unknown field (an event has \(Self.fieldNames.joined(separator: ", ")))",
                .unknownField
            )
            return
        }
        guard fields.seen.insert(field).inserted else {
            try scanner.skipValue()
            fields.reject(key, "appears more than once", .duplicateField)
            return
        }
        switch field {
        case .endpoint, .provider, .model:
            guard let value = try readString(key, &scanner, into: &fields) else { return }
            if let problem = rules.checkLabelValue(value) {
                fields.reject(key, problem, .invalidLabel)
            } else {
                fields.labels[field] = value
            }
        case .stages:
            try decodeStages(&scanner, into: &fields)
        case .timestamp:
            try decodeTimestamp(&scanner, into: &fields)
        }
    }

    /// The event made of `fields`, or nil after appending its problems to `rejections`.
    public func finish(_ fields: EventFields, rejections: inout [EventRejection]) -> TimingEvent? {
        var fields = fields
        if !fields.seen.contains(.endpoint) {
            fields.reject("endpoint", "is required (the route that served the request, e.g. /v1/chat/completions)", .missingField)
        }
        if !fields.seen.contains(.stages) {
            fields.reject("stages", "is required: an object of stage name to seconds, e.g. {\"backend_fetch\": 1.7}", .missingField)
        }
        guard fields.problems.isEmpty, let endpoint = fields.labels[.endpoint] else {
            rejections.append(contentsOf: fields.problems)
            return nil
        }
        return TimingEvent(
            endpoint: endpoint,
            provider: fields.labels[.provider] ?? "unknown",
            model: fields.labels[.model] ?? "unknown",
            stages: fields.stages,
            timestamp: fields.timestamp ?? rules.now
        )
    }

    private func readString(_ key: String, _ scanner: inout JSONScanner, into fields: inout EventFields) throws -> String? {
        let kind = try scanner.peekKind()
        guard kind == .string else {
            try scanner.skipValue()
            fields.reject(key, "must be a string, got \(kind.noun)", .wrongType)
            return nil
        }
        return try scanner.readString()
    }

    private func decodeStages(_ scanner: inout JSONScanner, into fields: inout EventFields) throws {
        let kind = try scanner.peekKind()
        guard kind == .object else {
            try scanner.skipValue()
            fields.reject("stages", "must be an object of stage name to seconds, got \(kind.noun)", .wrongType)
            return
        }
        var count = 0
        try scanner.readObject { name, _, scanner in
            count += 1
            let field = "stages." + name
            if let problem = rules.checkStageName(name) {
                try scanner.skipValue()
                fields.reject(EventQuoted.field(field), problem, .invalidStageName)
                return
            }
            if fields.stages.contains(where: { $0.name == name }) {
                try scanner.skipValue()
                fields.reject(field, "appears more than once", .duplicateField)
                return
            }
            guard let nanoseconds = try readDuration(field, &scanner, into: &fields) else { return }
            fields.stages.append(Stage(name: name, nanoseconds: nanoseconds))
        }
        if count == 0 {
            fields.reject("stages", "must name at least one stage", .missingField)
        } else if count > rules.limits.maxStagesPerEvent {
            fields.reject("stages", "has \(count) stages, more than the limit of \(rules.limits.maxStagesPerEvent)", .tooManyStages)
        }
    }

    private func readDuration(_ field: String, _ scanner: inout JSONScanner, into fields: inout EventFields) throws -> Int64? {
        let kind = try scanner.peekKind()
        guard kind == .number else {
            try scanner.skipValue()
            fields.reject(field, "must be a number of seconds, got \(kind.noun)", .wrongType)
            return nil
        }
        switch try scanner.readNumber() {
        case .notANumber:
            fields.reject(field, "must be a finite number of seconds (got NaN)", .invalidDuration)
            return nil
        case .infinity(let negative):
            fields.reject(field, "must be a finite number of seconds (got \(negative ? "-" : "")Infinity)", .invalidDuration)
            return nil
        case .finite(let range):
            let text = UnsafeBufferPointer(rebasing: scanner.bytes[range])
            switch rules.checkDuration(DecimalSeconds.read(text), text: String(decoding: text, as: UTF8.self)) {
            case .success(let nanoseconds):
                return nanoseconds
            case .failure(let problem):
                fields.reject(field, problem.text, .invalidDuration)
                return nil
            }
        }
    }

    private func decodeTimestamp(_ scanner: inout JSONScanner, into fields: inout EventFields) throws {
        let timestamp: Timestamp
        switch try scanner.peekKind() {
        case .string:
            let text = try scanner.readString()
            guard let parsed = RFC3339.parse(text) else {
                fields.reject(
                    "timestamp",
                    "\(EventRules.quoted(text)) is not an RFC 3339 time such as 2026-11-29T04:00:00Z (or give Unix seconds as a number)",
                    .invalidTimestamp
                )
                return
            }
            timestamp = parsed
        case .number:
            guard case .finite(let range) = try scanner.readNumber() else {
                fields.reject("timestamp", "must be finite Unix seconds or an RFC 3339 string", .invalidTimestamp)
                return
            }
            switch DecimalSeconds.read(UnsafeBufferPointer(rebasing: scanner.bytes[range])) {
            case .nanoseconds(let nanoseconds): timestamp = Timestamp(nanoseconds: nanoseconds)
            case .outOfRange(let negative): timestamp = Timestamp(nanoseconds: negative ? .min : .max)
            case .invalid: preconditionFailure("the scanner checked the number grammar")
            }
        case let kind:
            try scanner.skipValue()
            fields.reject("timestamp", "must be an RFC 3339 string or Unix seconds, got \(kind.noun)", .wrongType)
            return
        }
        if let problem = rules.checkTimestamp(timestamp) {
            fields.reject("timestamp", problem, .invalidTimestamp)
        } else {
            fields.timestamp = timestamp
        }
    }

    enum Field: String, Hashable, Sendable {
        case endpoint, provider, model, stages, timestamp
    }
}

/// What has been read of one event object so far.
public struct EventFields: Sendable {
    let index: Int
    var seen: Set<EventDecoder.Field> = []
    var labels: [EventDecoder.Field: String] = [:]
    var stages: [Stage] = []
    var timestamp: Timestamp?
    var problems: [EventRejection] = []

    /// Nothing read yet for event `index`.
    public init(index: Int) {
        self.index = index
    }

    mutating func reject(_ field: String, _ problem: String, _ reason: RejectionReason) {
        problems.append(EventRejection(index: index, field: field, problem: problem, reason: reason))
    }
}

/// Field names from client input, made safe to echo in an error message.
enum EventQuoted {
    static func field(_ name: String) -> String {
        let quoted = EventRules.quoted(name)
        return String(quoted.dropFirst().dropLast())
    }
}
