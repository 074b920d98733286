/// How a request body lays out its events.
package enum BodyFormat: Sendable {
    /// One event object, an array of them, or `{"events": [...]}`.
    case json
    /// One event object per line (`application/x-ndjson`); blank lines are skipped.
    case ndjson
}

/// The events read from one request body: those that passed every rule and those that did not.
package struct DecodedBatch: Sendable {
    /// The valid events, in body order, in compact form.
    package var columns = EventColumns()
    /// One entry per problem found; an event may have several.
    package var rejections: [EventRejection] = []
    /// How many events the body held, valid or not.
    package var total = 0

    /// An empty batch.
    package init() {}

    /// How many events passed every rule.
    package var acceptedCount: Int { columns.events.count }

    /// How many events were rejected (each counted once however many problems it had).
    package var rejectedCount: Int { total - acceptedCount }

    /// Empties the batch, keeping its storage: decoding the next small body into it then
    /// allocates almost nothing (a one-event body otherwise makes about 40 allocations here).
    package mutating func removeAll() {
        columns.removeAll()
        rejections.removeAll(keepingCapacity: true)
        total = 0
    }
}

/// A body that cannot be read at all; nothing in it is applied.
package struct BodyError: Error, Equatable, Sendable {
    /// What made the body unreadable.
    package enum Kind: Sendable {
        /// Not well-formed JSON, or not one of the accepted layouts.
        case malformed
        /// More events than the batch limit.
        case tooManyEvents
    }

    /// What made the body unreadable.
    package var kind: Kind
    /// A message that says where and why.
    package var message: String
}

/// Reads a request body in any accepted layout into a `DecodedBatch`.
package struct BatchDecoder: Sendable {
    /// The per-event decoder.
    package let decoder: EventDecoder

    /// A batch decoder applying `rules`.
    package init(rules: EventRules) {
        self.decoder = EventDecoder(rules: rules)
    }

    /// Reads `body` laid out as `format`.
    package func decode(_ body: UnsafeBufferPointer<UInt8>, format: BodyFormat) throws(BodyError) -> DecodedBatch {
        var batch = DecodedBatch()
        try decode(body, format: format, into: &batch)
        return batch
    }

    /// Reads `body` laid out as `format` into `batch`, whose earlier contents are dropped (its
    /// storage is kept). On a throw, `batch` holds part of the body.
    package func decode(_ body: UnsafeBufferPointer<UInt8>, format: BodyFormat, into batch: inout DecodedBatch) throws(BodyError) {
        batch.removeAll()
        do {
            switch format {
            case .json: try decodeJSON(body, into: &batch)
            case .ndjson: try decodeNDJSON(body, into: &batch)
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
    package func decode(_ body: [UInt8], format: BodyFormat) throws(BodyError) -> DecodedBatch {
        do {
            return try body.withUnsafeBufferPointer { buffer throws(BodyError) in try decode(buffer, format: format) }
        }
    }

    private func decodeJSON(_ body: UnsafeBufferPointer<UInt8>, into batch: inout DecodedBatch) throws {
        var scanner = JSONScanner(bytes: body)
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
    }

    private func decodeArray(_ scanner: inout JSONScanner, into batch: inout DecodedBatch) throws {
        try scanner.readArray { index, scanner in
            try decodeOne(&scanner, index: index, into: &batch)
        }
    }

    // A top-level object is either one event or the `{"events": [...]}` wrapper; which one is
    // known only once its members have been read, so both are read in the same pass.
    private func decodeTopLevelObject(_ scanner: inout JSONScanner, into batch: inout DecodedBatch) throws {
        var fields = EventFields(index: 0, firstStage: 0)
        var sawWrapper = false
        var sawEventMember = false
        let object = scanner
        try scanner.readObjectKeys { key, keyOffset, scanner in
            if EventDecoder.Field.equal(key, "events") {
                guard !sawWrapper else {
                    throw JSONSyntaxError(offset: keyOffset, message: "\"events\" appears more than once")
                }
                sawWrapper = true
                guard try scanner.peekKind() == .array else {
                    throw JSONSyntaxError(offset: scanner.position, message: "\"events\" must be an array of event objects")
                }
                try decodeArray(&scanner, into: &batch)
            } else {
                sawEventMember = true
                try decoder.decodeMember(key, &scanner, into: &fields, columns: &batch.columns)
            }
        }
        if sawWrapper {
            guard !sawEventMember else {
                // Named by reading the object again: only this refusal needs the names.
                var again = object
                var others: [String] = []
                try again.readObjectKeys { key, _, scanner in
                    if !EventDecoder.Field.equal(key, "events") { others.append(EventRules.quoted(String(decoding: key, as: UTF8.self))) }
                    try scanner.skipValue()
                }
                throw BodyError(
                    kind: .malformed,
                    message: "an object holding \"events\" must hold nothing else (found \(others.joined(separator: ", ")))"
                )
            }
            return
        }
        batch.total = 1
        decoder.finish(fields, into: &batch)
    }

    private func decodeNDJSON(_ body: UnsafeBufferPointer<UInt8>, into batch: inout DecodedBatch) throws {
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
    }

    private func decodeOne(_ scanner: inout JSONScanner, index: Int, into batch: inout DecodedBatch) throws {
        guard batch.total < decoder.rules.limits.maxEventsPerBatch else {
            throw BodyError(
                kind: .tooManyEvents,
                message: "the batch holds more than \(decoder.rules.limits.maxEventsPerBatch) events; split it into smaller requests"
            )
        }
        batch.total += 1
        try decoder.decodeEvent(&scanner, index: index, into: &batch)
    }
}
