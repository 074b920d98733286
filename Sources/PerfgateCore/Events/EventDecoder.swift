/// Reads event objects from JSON into `EventColumns`, applying `EventRules` field by field.
///
/// Syntax errors throw (the whole body is refused); field errors become `EventRejection`s for
/// that event only, and reading carries on with the next event. Keys are matched as bytes and
/// values interned, so a valid event makes no `String`; error messages are built only on error.
package struct EventDecoder: Sendable {
    /// The field rules in force.
    package let rules: EventRules

    /// The fields an event object may hold.
    package static let fieldNames = Field.allCases.map(\.name)

    /// A decoder applying `rules`.
    package init(rules: EventRules) {
        self.rules = rules
    }

    /// Reads one value that should be an event object: appends the event to `batch`, or what
    /// was wrong with it to `batch.rejections`.
    package func decodeEvent(_ scanner: inout JSONScanner, index: Int, into batch: inout DecodedBatch) throws {
        let kind = try scanner.peekKind()
        guard kind == .object else {
            try scanner.skipValue()
            batch.rejections.append(
                EventRejection(index: index, field: "", problem: "must be a JSON object, got \(kind.noun)", reason: .notAnObject)
            )
            return
        }
        var fields = EventFields(index: index, firstStage: batch.columns.stages.count)
        try scanner.readObjectKeys { key, _, scanner in
            try decodeMember(key, &scanner, into: &fields, columns: &batch.columns)
        }
        finish(fields, into: &batch)
    }

    /// Reads the value of one member of an event object.
    package func decodeMember(
        _ key: UnsafeBufferPointer<UInt8>,
        _ scanner: inout JSONScanner,
        into fields: inout EventFields,
        columns: inout EventColumns
    ) throws {
        guard let field = Field(key) else {
            try scanner.skipValue()
            fields.reject(
                EventQuoted.field(String(decoding: key, as: UTF8.self)),
                "unknown field (an event has \(Self.fieldNames.joined(separator: ", ")))",
                .unknownField
            )
            return
        }
        guard fields.markSeen(field) else {
            try scanner.skipValue()
            fields.reject(field.name, "appears more than once", .duplicateField)
            return
        }
        switch field {
        case .endpoint, .provider, .model:
            guard let number = try readLabel(field, &scanner, into: &fields, columns: &columns) else { return }
            if let problem = columns.labels.problems[Int(number)] {
                fields.reject(field.name, problem, .invalidLabel)
            } else {
                fields.setLabel(field, number)
            }
        case .stages:
            try decodeStages(&scanner, into: &fields, columns: &columns)
        case .timestamp:
            try decodeTimestamp(&scanner, into: &fields)
        }
    }

    /// Appends the event made of `fields` to `batch`, or its problems to `batch.rejections`.
    package func finish(_ fields: EventFields, into batch: inout DecodedBatch) {
        var fields = fields
        if !fields.hasSeen(.endpoint) {
            fields.reject("endpoint", "is required (the route that served the request, e.g. /v1/chat/completions)", .missingField)
        }
        if !fields.hasSeen(.stages) {
            fields.reject("stages", "is required: an object of stage name to seconds, e.g. {\"backend_fetch\": 1.7}", .missingField)
        }
        let stageEnd = batch.columns.stages.count
        guard fields.problems.isEmpty, fields.endpoint >= 0 else {
            batch.rejections.append(contentsOf: fields.problems)
            batch.columns.stages.removeSubrange(fields.firstStage..<stageEnd)
            return
        }
        let unknown = fields.provider < 0 || fields.model < 0 ? batch.columns.unknown(rule: rules.checkLabelValue) : -1
        batch.columns.events.append(
            EventColumns.Event(
                endpoint: fields.endpoint,
                provider: fields.provider >= 0 ? fields.provider : unknown,
                model: fields.model >= 0 ? fields.model : unknown,
                timestamp: fields.timestamp ?? rules.now,
                stages: fields.firstStage..<stageEnd
            )
        )
    }

    private func readLabel(
        _ field: Field,
        _ scanner: inout JSONScanner,
        into fields: inout EventFields,
        columns: inout EventColumns
    ) throws -> Int32? {
        let kind = try scanner.peekKind()
        guard kind == .string else {
            try scanner.skipValue()
            fields.reject(field.name, "must be a string, got \(kind.noun)", .wrongType)
            return nil
        }
        // The previous event's value for the field is the likeliest match.
        let hint = columns.events.last.map { previous in
            switch field {
            case .endpoint: previous.endpoint
            case .provider: previous.provider
            default: previous.model
            }
        }
        return try scanner.withStringBytes { text, _ in columns.labels.intern(text, hint: hint, rule: rules.checkLabelValue) }
    }

    private func decodeStages(_ scanner: inout JSONScanner, into fields: inout EventFields, columns: inout EventColumns) throws {
        let kind = try scanner.peekKind()
        guard kind == .object else {
            try scanner.skipValue()
            fields.reject("stages", "must be an object of stage name to seconds, got \(kind.noun)", .wrongType)
            return
        }
        var count = 0
        // Events of one body tend to list the same stages in the same order: the stage at the
        // same position of the previous event is the likeliest match.
        let previousStages = columns.events.last?.stages ?? 0..<0
        try scanner.readObjectKeys { name, _, scanner in
            let position = previousStages.lowerBound + count
            let hint = position < previousStages.upperBound ? columns.stages[position].name : nil
            count += 1
            let number = columns.stageNames.intern(name, hint: hint, rule: rules.checkStageName)
            if let problem = columns.stageNames.problems[Int(number)] {
                try scanner.skipValue()
                fields.reject(EventQuoted.field(Self.stageField(name)), problem, .invalidStageName)
                return
            }
            if columns.stages[fields.firstStage...].contains(where: { $0.name == number }) {
                try scanner.skipValue()
                fields.reject(Self.stageField(name), "appears more than once", .duplicateField)
                return
            }
            guard let nanoseconds = try readDuration(name, &scanner, into: &fields) else { return }
            columns.stages.append(EventColumns.StageValue(name: number, nanoseconds: nanoseconds))
        }
        if count == 0 {
            fields.reject("stages", "must name at least one stage", .missingField)
        } else if count > rules.limits.maxStagesPerEvent {
            fields.reject("stages", "has \(count) stages, more than the limit of \(rules.limits.maxStagesPerEvent)", .tooManyStages)
        }
    }

    private static func stageField(_ name: UnsafeBufferPointer<UInt8>) -> String {
        "stages." + String(decoding: name, as: UTF8.self)
    }

    private func readDuration(_ name: UnsafeBufferPointer<UInt8>, _ scanner: inout JSONScanner, into fields: inout EventFields) throws -> Int64? {
        // Nearly every duration is a plain decimal: read it in one pass, without the general path.
        if let (nanoseconds, range) = scanner.readNumber(using: DecimalSeconds.readPlainPrefix) {
            switch rules.checkDuration(.nanoseconds(nanoseconds), text: String(decoding: scanner.bytes[range], as: UTF8.self)) {
            case .success(let nanoseconds):
                return nanoseconds
            case .failure(let problem):
                fields.reject(Self.stageField(name), problem.message, .invalidDuration)
                return nil
            }
        }
        let kind = try scanner.peekKind()
        guard kind == .number else {
            try scanner.skipValue()
            fields.reject(Self.stageField(name), "must be a number of seconds, got \(kind.noun)", .wrongType)
            return nil
        }
        switch try scanner.readNumber() {
        case .notANumber:
            fields.reject(Self.stageField(name), "must be a finite number of seconds (got NaN)", .invalidDuration)
            return nil
        case .infinity(let negative):
            fields.reject(Self.stageField(name), "must be a finite number of seconds (got \(negative ? "-" : "")Infinity)", .invalidDuration)
            return nil
        case .finite(let range):
            let text = UnsafeBufferPointer(rebasing: scanner.bytes[range])
            switch rules.checkDuration(DecimalSeconds.read(text), text: String(decoding: text, as: UTF8.self)) {
            case .success(let nanoseconds):
                return nanoseconds
            case .failure(let problem):
                fields.reject(Self.stageField(name), problem.message, .invalidDuration)
                return nil
            }
        }
    }

    private func decodeTimestamp(_ scanner: inout JSONScanner, into fields: inout EventFields) throws {
        let timestamp: Timestamp
        switch try scanner.peekKind() {
        case .string:
            var unreadable = ""
            let parsed = try scanner.withStringBytes { text, _ -> Timestamp? in
                let instant = RFC3339.parse(text)
                if instant == nil { unreadable = String(decoding: text, as: UTF8.self) }
                return instant
            }
            guard let instant = parsed else {
                fields.reject(
                    "timestamp",
                    "\(EventRules.quoted(unreadable)) is not an RFC 3339 time such as 2026-11-29T04:00:00Z (or give Unix seconds as a number)",
                    .invalidTimestamp
                )
                return
            }
            timestamp = instant
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

    /// The members an event object may hold.
    package enum Field: UInt8, CaseIterable, Sendable {
        case endpoint, provider, model, stages, timestamp

        /// The member name.
        package var name: String { utf8Name.description }

        /// The field a key names, compared as bytes.
        init?(_ key: UnsafeBufferPointer<UInt8>) {
            let candidate: Field
            switch key.count {
            case 8: candidate = key[0] == UInt8(ascii: "e") ? .endpoint : .provider
            case 5: candidate = .model
            case 6: candidate = .stages
            case 9: candidate = .timestamp
            default: return nil
            }
            guard Self.equal(key, candidate.utf8Name) else { return nil }
            self = candidate
        }

        private var utf8Name: StaticString {
            switch self {
            case .endpoint: "endpoint"
            case .provider: "provider"
            case .model: "model"
            case .stages: "stages"
            case .timestamp: "timestamp"
            }
        }

        static func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
            guard bytes.count == word.utf8CodeUnitCount else { return false }
            return word.withUTF8Buffer { expected in
                var index = 0
                while index < expected.count {
                    if bytes[index] != expected[index] { return false }
                    index += 1
                }
                return true
            }
        }
    }
}

/// What has been read of one event object so far.
package struct EventFields: Sendable {
    let index: Int
    /// Where this event's stages start in the batch's stage array.
    let firstStage: Int
    private var seen: UInt8 = 0
    var endpoint: Int32 = -1
    var provider: Int32 = -1
    var model: Int32 = -1
    var timestamp: Timestamp?
    var problems: [EventRejection] = []

    /// Nothing read yet for event `index`, whose stages will start at `firstStage`.
    package init(index: Int, firstStage: Int) {
        self.index = index
        self.firstStage = firstStage
    }

    /// Records that `field` was read; false when it already had been.
    mutating func markSeen(_ field: EventDecoder.Field) -> Bool {
        let bit: UInt8 = 1 << field.rawValue
        defer { seen |= bit }
        return seen & bit == 0
    }

    func hasSeen(_ field: EventDecoder.Field) -> Bool {
        seen & (1 << field.rawValue) != 0
    }

    mutating func setLabel(_ field: EventDecoder.Field, _ number: Int32) {
        switch field {
        case .endpoint: endpoint = number
        case .provider: provider = number
        case .model: model = number
        case .stages, .timestamp: preconditionFailure("\(field.name) is not a label")
        }
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
