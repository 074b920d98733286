/// Estimates a quantile from bucket counts exactly as PromQL's `histogram_quantile` does for
/// classic histograms, so `/v1/trends` agrees with Grafana panels over the same window.
///
/// Linear interpolation within the bucket that holds the rank; a lower bound of 0 for the
/// first bucket; the highest finite bound when the rank falls in `+Inf`; NaN with no
/// observations; -Inf/+Inf for q below 0 or above 1.
package enum HistogramQuantile {
    /// The `q` quantile, in seconds, of `counts` laid out as `layout`.
    package static func estimate(_ q: Double, counts: HistogramCounts, layout: BucketLayout) -> Double {
        // `map(Double.init)` would pick Double(bitPattern:) for UInt64: the value conversion is spelled out.
        estimate(q, upperBounds: layout.upperBounds.map { Double($0) / 1e9 }, cumulative: counts.cumulative.map { Double($0) })
    }

    /// The `q` quantile from finite upper bounds and cumulative counts (one more count than bounds: `+Inf`).
    package static func estimate(_ q: Double, upperBounds: [Double], cumulative: [Double]) -> Double {
        if q.isNaN { return .nan }
        if q < 0 { return -.infinity }
        if q > 1 { return .infinity }
        precondition(cumulative.count == upperBounds.count + 1, "a count per bound plus +Inf")
        let bounds = upperBounds + [.infinity]
        // PromQL forces monotonic counts; ours are always monotonic, so this is the same.
        guard bounds.count >= 2, let observations = cumulative.last, observations > 0 else { return .nan }
        let rank = q * observations
        // The first bucket (not counting +Inf) whose cumulative count reaches the rank.
        let bucket = cumulative.dropLast().firstIndex { $0 >= rank } ?? (bounds.count - 1)
        if bucket == bounds.count - 1 {
            return bounds[bounds.count - 2]
        }
        if bucket == 0 && bounds[0] <= 0 {
            return bounds[0]
        }
        var start = 0.0
        var count = cumulative[bucket]
        var rankInBucket = rank
        if bucket > 0 {
            start = bounds[bucket - 1]
            count -= cumulative[bucket - 1]
            rankInBucket -= cumulative[bucket - 1]
        }
        return start + (bounds[bucket] - start) * (rankInBucket / count)
    }
}

/// Which buckets a quantile was estimated from.
package enum QuantileResolution: String, Sendable {
    /// The fine exponential buckets (schema 6): within 1.09% of the observation at the rank.
    case exponential
    /// The family's classic buckets: anywhere inside the bucket that holds the rank.
    case classic

    /// The finest resolution every one of `counts` can answer at, so that compared windows are
    /// compared at the same one: classic as soon as one of them holds observations that were
    /// not recorded exponentially (stored before perfgate kept exponential buckets).
    package static func common(_ counts: HistogramCounts...) -> QuantileResolution {
        counts.allSatisfy(\.hasWholeExponential) ? .exponential : .classic
    }
}

extension HistogramCounts {
    /// True when the exponential buckets hold every observation the classic ones do.
    package var hasWholeExponential: Bool {
        exponential.isComplete && exponential.count == count
    }

    /// The `q` quantile in seconds at `resolution` (which must be `.classic` unless
    /// `hasWholeExponential`); NaN with no observations.
    package func quantile(_ q: Double, at resolution: QuantileResolution, layout: BucketLayout) -> Double {
        switch resolution {
        case .exponential: exponential.quantile(q)
        case .classic: HistogramQuantile.estimate(q, counts: self, layout: layout)
        }
    }
}
