/// A 64-bit fingerprint of a request body, to notice an `Idempotency-Key` reused for another batch.
///
/// Not a cryptographic hash: it guards against client mistakes, not against someone who holds an
/// ingest token and wants to collide with another client's key. It reads eight bytes per step
/// so that fingerprinting a large batch costs little next to decoding it.
enum BodyFingerprint {
    static func of(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(bytes.count)
        let prime: UInt64 = 0x0000_0100_0000_01B3
        let raw = UnsafeRawBufferPointer(bytes)
        var offset = 0
        while offset + 8 <= raw.count {
            let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            hash = (hash ^ word) &* prime
            hash ^= hash >> 29
            offset += 8
        }
        while offset < raw.count {
            hash = (hash ^ UInt64(raw[offset])) &* prime
            offset += 1
        }
        return hash ^ (hash >> 32)
    }
}
