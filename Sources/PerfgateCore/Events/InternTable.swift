/// The distinct strings of one request body, each kept once and numbered in order of first sight,
/// with the verdict of its rule.
///
/// Label values and stage names repeat across the events of a batch. Interning them means a
/// `String` is made, and its rule checked, once per distinct value instead of once per event;
/// lookups hash the bytes in place, so a repeat allocates nothing. The hash is keyed with a
/// random seed per process (as Go's maps are), so a client cannot precompute colliding values.
package struct InternTable: Sendable {
    /// The strings, by number.
    package private(set) var strings: [String] = []
    /// What is wrong with each string under its rule, or nil when it is fine.
    package private(set) var problems: [String?] = []
    private var text: [UInt8] = []
    private var spans: [Range<Int>] = []
    /// Open addressing: each slot holds a string number + 1, or 0 when empty.
    private var slots: [Int32] = Array(repeating: 0, count: 16)

    /// An empty table.
    package init() {}

    /// Empties the table, keeping its storage for the next body.
    package mutating func removeAll() {
        strings.removeAll(keepingCapacity: true)
        problems.removeAll(keepingCapacity: true)
        text.removeAll(keepingCapacity: true)
        spans.removeAll(keepingCapacity: true)
        slots.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// How many distinct strings the table holds.
    package var count: Int { strings.count }

    /// The number of `bytes`, adding them (and checking `rule` once) when they are new.
    /// `bytes` must be valid UTF-8. `hint` is a number the bytes are likely to have (the same
    /// field of the previous event); when it matches, no hashing is done.
    package mutating func intern(_ bytes: UnsafeBufferPointer<UInt8>, hint: Int32? = nil, rule: (String) -> String?) -> Int32 {
        if let hint, equals(Int(hint), bytes) { return hint }
        let mask = slots.count - 1
        var slot = Self.hash(bytes) & mask
        while true {
            let entry = slots[slot]
            if entry == 0 { break }
            let number = Int(entry - 1)
            if equals(number, bytes) { return Int32(number) }
            slot = (slot + 1) & mask
        }
        let number = strings.count
        let string = String(decoding: bytes, as: UTF8.self)
        strings.append(string)
        problems.append(rule(string))
        let start = text.count
        text.append(contentsOf: bytes)
        spans.append(start..<text.count)
        slots[slot] = Int32(number + 1)
        // Kept at most half full, so probe runs stay short.
        if strings.count * 2 > slots.count { grow() }
        return Int32(number)
    }

    /// The number of `string`, adding it when new.
    package mutating func intern(_ string: String, rule: (String) -> String?) -> Int32 {
        var copy = string
        return copy.withUTF8 { intern($0, rule: rule) }
    }

    private func equals(_ number: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let span = spans[number]
        guard span.count == bytes.count else { return false }
        return text.withUnsafeBytes { stored in
            let candidate = UnsafeRawBufferPointer(bytes)
            var offset = 0
            while offset + 8 <= candidate.count {
                if stored.loadUnaligned(fromByteOffset: span.lowerBound + offset, as: UInt64.self)
                    != candidate.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                {
                    return false
                }
                offset += 8
            }
            while offset < candidate.count {
                if stored[span.lowerBound + offset] != candidate[offset] { return false }
                offset += 1
            }
            return true
        }
    }

    private mutating func grow() {
        var larger = [Int32](repeating: 0, count: slots.count * 2)
        let mask = larger.count - 1
        for number in strings.indices {
            let hash = text.withUnsafeBufferPointer { Self.hash(UnsafeBufferPointer(rebasing: $0[spans[number]])) }
            var slot = hash & mask
            while larger[slot] != 0 { slot = (slot + 1) & mask }
            larger[slot] = Int32(number + 1)
        }
        slots = larger
    }

    private static let seed = UInt64.random(in: .min ... .max)

    /// A keyed multiply-xorshift hash over 8-byte words; fast for the short strings labels are.
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        let raw = UnsafeRawBufferPointer(bytes)
        var state = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
        var offset = 0
        while offset + 8 <= raw.count {
            state = mix(state ^ raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while offset < raw.count {
            tail |= UInt64(raw[offset]) << shift
            shift += 8
            offset += 1
        }
        return Int(truncatingIfNeeded: mix(mix(state ^ tail)))
    }

    private static func mix(_ value: UInt64) -> UInt64 {
        var value = value &* 0xBF58_476D_1CE4_E5B9
        value ^= value >> 31
        value = value &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 29)
    }
}
