#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open files, which bounds its connections.
///
/// Most systems start a process with a soft limit of 1,024 descriptors and a hard limit far
/// above it; with 1,000 connections, the store's files and the listening socket, the soft limit
/// would be reached and the kernel would refuse to accept. The soft limit is raised to the hard
/// one at start-up, as Go's runtime and nginx's `worker_rlimit_nofile` do.
package enum OpenFileLimit {
    /// Raises the soft limit to the hard limit; returns the limit in force afterwards.
    @discardableResult
    package static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(resourceNumber, &limit) == 0 else { return -1 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resourceNumber, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Descriptors perfgate needs beside its connections: the store, the listening socket, logs.
    package static let reserve = 64

    #if canImport(Glibc)
    private static var resourceNumber: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }
    #else
    private static var resourceNumber: Int32 { RLIMIT_NOFILE }
    #endif
}
