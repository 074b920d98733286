// libFuzzer harness over the decoders of bytes perfgate reads back from its store: exponential
// bucket lists (read, summed with another list, folded densely, summed per series) and waiting
// spans. Any bytes must decode or be refused, never trap or allocate without bound; what decodes
// must survive encoding again, and a refused list must add nothing where it is summed.

func fuzzStoredBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let decoded = ExponentialEncoding.decode(raw)
    if let decoded {
        precondition(decoded.indices.allSatisfy { ExponentialBuckets.storedIndices.contains($0) }, "indices in their stored range")
        precondition(ExponentialEncoding.encode(decoded).withUnsafeBytes { ExponentialEncoding.decode($0) } == decoded, "a list survives encoding")
    }
    // Summed with itself, and with a list of the widest spread the range allows.
    let wide = ExponentialEncoding.encode(ExponentialBuckets(
        zeroCount: 1, indices: [ExponentialBuckets.storedIndices.lowerBound, ExponentialBuckets.storedIndices.upperBound], counts: [1, 1]
    ))
    let summed = ExponentialEncoding.sum(raw, raw)
    precondition((summed == nil) == (decoded == nil), "a list sums exactly when it decodes")
    _ = wide.withUnsafeBytes { ExponentialEncoding.sum(raw, $0) }
    var span = ExponentialSpan()
    let added = span.add(encoded: raw)
    precondition(added == (decoded != nil), "a dense fold takes exactly the lists that decode")
    if !added { precondition(span.buckets == ExponentialBuckets(), "a refused list adds nothing") }
    var sums = ExponentialSums(slots: 2)
    _ = sums.add(encoded: raw, to: 0)
    _ = wide.withUnsafeBytes { sums.add(encoded: $0, to: 1) }
    sums.finish()
    precondition(sums.buckets(ofSlot: 0) == (decoded ?? ExponentialBuckets()), "per-series sums hold what decoded, or nothing")
    // The same bytes as a waiting span: decoded, or refused.
    if let span = OTLPSpan(encoded: UnsafeBufferPointer(start: data, count: size)) {
        precondition(span.encoded().withUnsafeBufferPointer { OTLPSpan(encoded: $0) } == span, "a stored span survives encoding")
    }
    return 0
}
