import PerfgateCore

/// OTLP export bodies for tests, written as an SDK writes them.
package enum OTLPExports {
    /// An `ExportTraceServiceRequest` holding `spans` under one resource and scope.
    package static func request(_ spans: [OTLPSpan]) -> [UInt8] {
        var scope: [UInt8] = []
        for span in spans { ProtobufWriter.bytes(2, span.encoded(), into: &scope) }
        var resource: [UInt8] = []
        ProtobufWriter.bytes(2, scope, into: &resource)
        var request: [UInt8] = []
        ProtobufWriter.bytes(1, resource, into: &request)
        return request
    }
}
