// libFuzzer harness over the trend query's query-string parser: any bytes, read as the query
// of a URL, must parse or be refused with a message, never crash. Built by scripts/fuzz into one
// binary with PerfgateCore's sources (see FuzzEntry.swift).

func fuzzQueryString(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let parameters = try QueryString.parse(text)
        do {
            let query = try TrendQuery.parse(parameters, retentionMinutes: 25 * 60)
            precondition((0...1).contains(query.quantile), "the quantile is checked")
        } catch {
            precondition(!error.message.isEmpty, "a refusal says why")
        }
    } catch {
        precondition(!error.message.isEmpty, "a refusal says why")
    }
    return 0
}
