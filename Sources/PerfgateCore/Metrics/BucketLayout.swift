/// A histogram's bucket upper bounds, in nanoseconds, strictly increasing; `+Inf` is implied.
public struct BucketLayout: Hashable, Sendable {
    /// The finite upper bounds, in nanoseconds.
    public let upperBounds: [Int64]

    /// The most finite bounds a layout may have.
    public static let maximumBounds = 64

    /// A layout from bounds in nanoseconds; they must be non-negative and strictly increasing.
    public init(nanoseconds bounds: [Int64]) throws(LayoutError) {
        guard !bounds.isEmpty else { throw LayoutError("needs at least one bucket bound") }
        guard bounds.count <= Self.maximumBounds else {
            throw LayoutError("has \(bounds.count) bounds; at most \(Self.maximumBounds) are allowed")
        }
        for (previous, next) in zip(bounds, bounds.dropFirst()) where next <= previous {
            throw LayoutError(
                "bounds must increase strictly (\(DecimalSeconds.format(nanoseconds: next)) follows \(DecimalSeconds.format(nanoseconds: previous)))"
            )
        }
        guard bounds[0] >= 0 else { throw LayoutError("bounds must not be negative") }
        self.upperBounds = bounds
    }

    /// A layout from bounds written as decimal seconds (`"0.1"`, `"2.5"`).
    public init(seconds texts: [String]) throws(LayoutError) {
        var bounds: [Int64] = []
        for text in texts {
            let trimmed = text.trimmingSpaces()
            guard case .nanoseconds(let value) = DecimalSeconds.read(trimmed), value >= 0 else {
                throw LayoutError("\(EventRules.quoted(trimmed)) is not a non-negative number of seconds")
            }
            bounds.append(value)
        }
        try self.init(nanoseconds: bounds)
    }

    /// The default layout of a family: the seed's.
    public static func `default`(for metric: HistogramMetric) -> BucketLayout {
        // The defaults are constants checked by the tests, so this cannot fail.
        try! BucketLayout(seconds: metric.defaultBoundsText)
    }

    /// Buckets including `+Inf`.
    public var bucketCount: Int { upperBounds.count + 1 }

    /// The bucket a value falls in: the first whose bound is at least the value (bounds are inclusive).
    @inline(__always)
    public func bucketIndex(for nanoseconds: Int64) -> Int {
        upperBounds.withUnsafeBufferPointer { Self.bucketIndex(of: nanoseconds, in: $0) }
    }

    /// The first of `bounds` (increasing) that is at least `value`; `bounds.count` for `+Inf`.
    @inline(__always)
    public static func bucketIndex(of value: Int64, in bounds: UnsafeBufferPointer<Int64>) -> Int {
        var low = 0
        var high = bounds.count
        while low < high {
            let middle = (low + high) / 2
            if bounds[middle] >= value { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// The `le` label text of each bucket, `+Inf` last.
    public var boundLabels: [String] {
        upperBounds.map { DecimalSeconds.format(nanoseconds: $0) } + ["+Inf"]
    }

    /// The bounds as comma-separated seconds, as configured and as recorded in the store.
    public var description: String {
        upperBounds.map { DecimalSeconds.format(nanoseconds: $0) }.joined(separator: ",")
    }
}

/// A bucket layout that cannot be used, and why.
public struct LayoutError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong with the layout.
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// The bucket layout of every histogram family.
public struct BucketLayouts: Hashable, Sendable {
    /// Indexed by `HistogramMetric.rawValue`: an array, since ingest looks a layout up per observation.
    private var layouts: [BucketLayout]

    /// The seed's layouts for every family.
    public static let seed = BucketLayouts(overrides: [:])

    /// The seed's layouts with some families replaced.
    public init(overrides: [HistogramMetric: BucketLayout]) {
        layouts = HistogramMetric.allCases.map { overrides[$0] ?? .default(for: $0) }
    }

    /// The layout of a family.
    public subscript(metric: HistogramMetric) -> BucketLayout {
        layouts[metric.rawValue]
    }
}

extension String {
    func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while scalars.first == " " { scalars.removeFirst() }
        while scalars.last == " " { scalars.removeLast() }
        return String(scalars)
    }
}
