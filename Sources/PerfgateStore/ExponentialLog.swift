import PerfgateCore

/// The `deltas` blob of an `exponential_log` row: the exponential buckets one commit added to
/// each series-minute it touched (see migrations/0004_exponential_log.sql).
enum ExponentialLog {
    /// Appends one series-minute's buckets.
    static func append(series id: SeriesID, minute: Minute, _ buckets: ExponentialBuckets, to bytes: inout [UInt8]) {
        let encoding = ExponentialEncoding.encode(buckets)
        Varint.append(UInt64(bitPattern: id), to: &bytes)
        Varint.append(UInt64(bitPattern: minute.index), to: &bytes)
        Varint.append(UInt64(encoding.count), to: &bytes)
        bytes.append(contentsOf: encoding)
    }

    /// Calls `body` with each series-minute of a blob and its encoded buckets; false when the
    /// blob is damaged (or `body` refused an entry).
    static func forEach(_ raw: UnsafeRawBufferPointer, _ body: (SeriesID, Minute, UnsafeRawBufferPointer) -> Bool) -> Bool {
        var position = 0
        while position < raw.count {
            guard let id = Varint.read(raw, &position), let minute = Varint.read(raw, &position),
                let length = Varint.read(raw, &position), length <= UInt64(raw.count - position)
            else { return false }
            let end = position + Int(length)
            guard body(SeriesID(bitPattern: id), Minute(index: Int64(bitPattern: minute)), UnsafeRawBufferPointer(rebasing: raw[position..<end])) else {
                return false
            }
            position = end
        }
        return true
    }
}
