@testable import PerfgateCore

/// What the reference decoder read from a body.
struct ReferenceBatch {
    var events: [TimingEvent] = []
    var rejections: [EventRejection] = []
    var total = 0
}

/// The decoder the byte-level one replaced, kept as an oracle: it reads keys and values as
/// `String`s and builds `TimingEvent`s directly. Both must accept and reject the same bodies
/// with the same messages (see `decodeBatch` in TestSupport.swift).
struct ReferenceBatchDecoder: Sendable {
    /// The per-event decoder.
    let decoder: ReferenceEventDecoder

    /// A batch decoder applying `rules`.
    init(rules: EventRules) {
        self.decoder = ReferenceEventDecoder(rules: rules)
    }

    /// Reads `body` laid out as `format`.
    func decode(_ body: UnsafeBufferPointer<UInt8>, format: BodyFormat) throws(BodyError) -> ReferenceBatch {
        do {
            switch format {
            case .json: return try decodeJSON(body)
            case .ndjson: return try decodeNDJSON(body)
            }
        } catch let error as BodyError {
            throw error
        } catch let error as JSONSyntaxError {
            let position = TextPosition(offset: error.offset, in: body)
            throw BodyError(kind: .malformed, message: "invalid JSON at \(position): \(error.message)")
        } catch {
            throw BodyError(kind: .malformed, message: "invalid JSON: \(error)")
        }
    }

    /// Reads `body` laid out as `format`.
    func decode(_ body: [UInt8], format: BodyFormat) throws(BodyError) -> ReferenceBatch {
        do {
            return try body.withUnsafeBufferPointer { buffer throws(BodyError) in try decode(buffer, format: format) }
        }
    }

    private func decodeJSON(_ body: UnsafeBufferPointer<UInt8>) throws -> ReferenceBatch {
        var scanner = JSONScanner(bytes: body)
        var batch = ReferenceBatch()
        guard scanner.peekByte() != nil else {
            throw BodyError(kind: .malformed, message: "the body is empty; send an event object, an array of events, or {\"events\": [...]}")
        }
        switch try scanner.peekKind() {
        case .array:
            try decodeArray(&scanner, into: &batch)
        case .object:
            try decodeTopLevelObject(&scanner, into: &batch)
        case let kind:
            throw BodyError(
                kind: .malformed,
                message: "the body is \(kind.noun); send an event object, an array of events, or {\"events\": [...]}"
            )
        }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else {
            let position = TextPosition(offset: scanner.position, in: body)
            throw BodyError(
                kind: .malformed,
                message: "invalid JSON at \(position): unexpected data after the JSON value (for one event per line use Content-Type: application/x-ndjson)"
            )
        }
        return batch
    }

    private func decodeArray(_ scanner: inout JSONScanner, into batch: inout ReferenceBatch) throws {
        try scanner.readArray { index, scanner in
            try decodeOne(&scanner, index: index, into: &batch)
        }
    }

    // A top-level object is either one event or the `{"events": [...]}` wrapper; which one is
    // known only once its members have been read, so both are read in the same pass.
    private func decodeTopLevelObject(_ scanner: inout JSONScanner, into batch: inout ReferenceBatch) throws {
        var fields = ReferenceFields(index: 0)
        var sawWrapper = false
        var eventMembers: [String] = []
        try scanner.readObject { key, keyOffset, scanner in
            if key == "events" {
                guard !sawWrapper else {
                    throw JSONSyntaxError(offset: keyOffset, message: "\"events\" appears more than once")
                }
                sawWrapper = true
                guard try scanner.peekKind() == .array else {
                    throw JSONSyntaxError(offset: scanner.position, message: "\"events\" must be an array of event objects")
                }
                try decodeArray(&scanner, into: &batch)
            } else {
                eventMembers.append(key)
                try decoder.decodeMember(key, &scanner, into: &fields)
            }
        }
        if sawWrapper {
            guard eventMembers.isEmpty else {
                throw BodyError(
                    kind: .malformed,
                    message: "an object holding \"events\" must hold nothing else (found \(eventMembers.map { EventRules.quoted($0) }.joined(separator: ", ")))"
                )
            }
            return
        }
        batch.total = 1
        if let event = decoder.finish(fields, rejections: &batch.rejections) {
            batch.events.append(event)
        }
    }

    private func decodeNDJSON(_ body: UnsafeBufferPointer<UInt8>) throws -> ReferenceBatch {
        var batch = ReferenceBatch()
        var lineStart = 0
        while lineStart < body.count {
            var lineEnd = lineStart
            while lineEnd < body.count, body[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            var scanner = JSONScanner(bytes: body, range: lineStart..<lineEnd)
            if scanner.peekByte() != nil {
                try decodeOne(&scanner, index: batch.total, into: &batch)
                scanner.skipWhitespace()
                guard scanner.isAtEnd else {
                    let position = TextPosition(offset: scanner.position, in: body)
                    throw BodyError(
                        kind: .malformed,
                        message: "invalid NDJSON at \(position): unexpected data after the event (one JSON object per line)"
                    )
                }
            }
            lineStart = lineEnd + 1
        }
        return batch
    }

    private func decodeOne(_ scanner: inout JSONScanner, index: Int, into batch: inout ReferenceBatch) throws {
        guard batch.total < decoder.rules.limits.maxEventsPerBatch else {
            throw BodyError(
                kind: .tooManyEvents,
                message: "the batch holds more than \(decoder.rules.limits.maxEventsPerBatch) events; split it into smaller requests"
            )
        }
        batch.total += 1
        if let event = try decoder.decodeEvent(&scanner, index: index, rejections: &batch.rejections) {
            batch.events.append(event)
        }
    }
}

/// Reads event objects from JSON, applying `EventRules` field by field.
///
/// Syntax errors throw (the whole body is refused); field errors become `EventRejection`s for
/// that event only, and reading carries on with the next event.
struct ReferenceEventDecoder: Sendable {
    /// The field rules in force.
    let rules: EventRules

    /// The fields an event object may hold.
    static let fieldNames = ["endpoint", "provider", "model", "stages", "timestamp"]

    /// A decoder applying `rules`.
    init(rules: EventRules) {
        self.rules = rules
    }

    /// Reads one value that should be an event object. Returns the event, or nil after
    /// appending what was wrong with it to `rejections`.
    func decodeEvent(
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
        var fields = ReferenceFields(index: index)
        try scanner.readObject { key, _, scanner in
            try decodeMember(key, &scanner, into: &fields)
        }
        return finish(fields, rejections: &rejections)
    }

    /// Reads the value of one member of an event object into `fields`.
    func decodeMember(_ key: String, _ scanner: inout JSONScanner, into fields: inout ReferenceFields) throws {
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
    func finish(_ fields: ReferenceFields, rejections: inout [EventRejection]) -> TimingEvent? {
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

    private func readString(_ key: String, _ scanner: inout JSONScanner, into fields: inout ReferenceFields) throws -> String? {
        let kind = try scanner.peekKind()
        guard kind == .string else {
            try scanner.skipValue()
            fields.reject(key, "must be a string, got \(kind.noun)", .wrongType)
            return nil
        }
        return try scanner.readString()
    }

    private func decodeStages(_ scanner: inout JSONScanner, into fields: inout ReferenceFields) throws {
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

    private func readDuration(_ field: String, _ scanner: inout JSONScanner, into fields: inout ReferenceFields) throws -> Int64? {
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
                fields.reject(field, problem.message, .invalidDuration)
                return nil
            }
        }
    }

    private func decodeTimestamp(_ scanner: inout JSONScanner, into fields: inout ReferenceFields) throws {
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
struct ReferenceFields: Sendable {
    let index: Int
    var seen: Set<ReferenceEventDecoder.Field> = []
    var labels: [ReferenceEventDecoder.Field: String] = [:]
    var stages: [Stage] = []
    var timestamp: Timestamp?
    var problems: [EventRejection] = []

    /// Nothing read yet for event `index`.
    init(index: Int) {
        self.index = index
    }

    mutating func reject(_ field: String, _ problem: String, _ reason: RejectionReason) {
        problems.append(EventRejection(index: index, field: field, problem: problem, reason: reason))
    }
}

