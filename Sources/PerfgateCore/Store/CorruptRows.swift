import Synchronization

/// Rows of the store that could not be read back: skipped where they are read, so that a damaged
/// row costs its own counts and nothing else; counted once each, and described for the operator.
package final class CorruptRows: Sendable {
    private struct State {
        var seen: Set<String> = []
        var count = 0
        var examples: [String] = []
        var report: (@Sendable (String) -> Void)?
    }

    private let state = Mutex(State())
    /// Rows told apart and described at most: past it, each sighting counts.
    private static let remembered = 10_000
    /// Descriptions kept for `/readyz` and the status page.
    private static let kept = 10

    /// None found yet.
    package init() {}

    /// Calls `report` once for each row found from now on, the first time it is found (to log it).
    package func report(to report: @escaping @Sendable (String) -> Void) {
        state.withLock { $0.report = report }
    }

    /// Records that the row `row` describes (its table, series and minute, and what is wrong)
    /// could not be read and was skipped.
    package func record(_ row: String) {
        let report = state.withLock { state -> (@Sendable (String) -> Void)? in
            if state.seen.count < Self.remembered {
                guard state.seen.insert(row).inserted else { return nil }
            }
            state.count += 1
            if state.examples.count < Self.kept { state.examples.append(row) }
            return state.report
        }
        report?(row)
    }

    /// Damaged rows found since start.
    package var count: Int { state.withLock { $0.count } }

    /// The first few, described.
    package var examples: [String] { state.withLock { $0.examples } }
}
