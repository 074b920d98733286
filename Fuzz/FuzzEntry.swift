// The one libFuzzer entry point of the fuzz binary: PERFGATE_FUZZ_TARGET picks the harness
// (events, query, otlp or stored), so scripts/fuzz compiles PerfgateCore's sources once for all.
import Glibc

private let target: String = getenv("PERFGATE_FUZZ_TARGET").map { String(cString: $0) } ?? "events"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    switch target {
    case "query": fuzzQueryString(data, size)
    case "otlp": fuzzTraceDecoder(data, size)
    case "stored": fuzzStoredBytes(data, size)
    default: fuzzEventParser(data, size)
    }
}
