/// A histogram's bucket upper bounds, in nanoseconds, strictly increasing; `+Inf` is implied.
package struct BucketLayout: Hashable, Sendable {
    /// The finite upper bounds, in nanoseconds.
    package let upperBounds: [Int64]

    /// The most finite bounds a layout may have.
    package static let maximumBounds = 64

    /// A layout from bounds in nanoseconds; they must be non-negative and strictly increasing.
    package init(nanoseconds bounds: [Int64]) throws(LayoutError) {
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
    package init(seconds texts: [String]) throws(LayoutError) {
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
    package static func `default`(for metric: HistogramMetric) -> BucketLayout {
        // The defaults are constants checked by the tests, so this cannot fail.
        try! BucketLayout(seconds: metric.defaultBoundsText)
    }

    /// Buckets including `+Inf`.
    package var bucketCount: Int { upperBounds.count + 1 }

    /// The bucket a value falls in: the first whose bound is at least the value (bounds are inclusive).
    @inline(__always)
    package func bucketIndex(for nanoseconds: Int64) -> Int {
        upperBounds.withUnsafeBufferPointer { Self.bucketIndex(of: nanoseconds, in: $0) }
    }

    /// The first of `bounds` (increasing) that is at least `value`; `bounds.count` for `+Inf`.
    @inline(__always)
    package static func bucketIndex(of value: Int64, in bounds: UnsafeBufferPointer<Int64>) -> Int {
        var low = 0
        var high = bounds.count
        while low < high {
            let middle = (low + high) / 2
            if bounds[middle] >= value { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// The `le` label text of each bucket, `+Inf` last, in canonical float form (`1.0`, `2.5`).
    package var boundLabels: [String] {
        upperBounds.map(Self.canonicalLabel(nanoseconds:)) + ["+Inf"]
    }

    /// A bound as OpenMetrics' canonical float text, the form Python's `prometheus_client` writes
    /// and Prometheus 3 rewrites `le` to on ingest: a whole number keeps `.0` (`le="1.0"`), values
    /// under 0.0001 s and of a million seconds or more take an exponent (`1e-05`, `1e+06`).
    /// Written this way, a selector such as `le="1.0"` matches on every Prometheus version.
    package static func canonicalLabel(nanoseconds: Int64) -> String {
        let decimal = DecimalSeconds.format(nanoseconds: nanoseconds)
        guard nanoseconds > 0 else { return "0.0" }
        // Python's repr switches to an exponent below 1e-4; prometheus_client switches above
        // six whole digits, to match Go. Both write the shortest digits of the value.
        if nanoseconds < 100_000 || nanoseconds >= 1_000_000_000_000_000 {
            return exponentForm(decimal)
        }
        return decimal.contains(".") ? decimal : decimal + ".0"
    }

    /// `0.000015` → `1.5e-05`, `1500000` → `1.5e+06`: significant digits, then a two-digit or wider exponent.
    private static func exponentForm(_ decimal: String) -> String {
        let parts = decimal.split(separator: ".", omittingEmptySubsequences: false)
        let whole = String(parts[0])
        let fraction = parts.count > 1 ? String(parts[1]) : ""
        let exponent: Int
        var digits: Substring
        if whole != "0" {
            exponent = whole.count - 1
            digits = Substring(whole + fraction)
        } else {
            let leadingZeros = fraction.prefix { $0 == "0" }.count
            exponent = -(leadingZeros + 1)
            digits = fraction.dropFirst(leadingZeros)
        }
        while digits.count > 1, digits.last == "0" { digits = digits.dropLast() }
        let mantissa = digits.count > 1 ? "\(digits.first!).\(digits.dropFirst())" : String(digits)
        let magnitude = String(abs(exponent))
        return mantissa + (exponent < 0 ? "e-" : "e+") + (magnitude.count < 2 ? "0" + magnitude : magnitude)
    }

    /// The bounds as comma-separated seconds, as configured and as recorded in the store.
    package var description: String {
        upperBounds.map { DecimalSeconds.format(nanoseconds: $0) }.joined(separator: ",")
    }
}

/// A bucket layout that cannot be used, and why.
package struct LayoutError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong with the layout.
    package let message: String

    init(_ message: String) {
        self.message = message
    }

    package var description: String { message }
}

/// The bucket layout of every histogram family.
package struct BucketLayouts: Hashable, Sendable {
    /// Indexed by `HistogramMetric.rawValue`: an array, since ingest looks a layout up per observation.
    private var layouts: [BucketLayout]
    /// Per family, for each exponential bucket index in `exponentialIndices`, the family's bucket
    /// that every value of that exponential bucket falls in, or -1 where the exponential bucket
    /// holds one of the family's bounds. Ingest finds both buckets of most observations from one
    /// index: a table read instead of a search of the bounds.
    private var classicByExponential: [Int8]
    /// Every family's bounds back to back, and where each family's are: ingest searches them in
    /// place, without fetching (and retaining) a layout per observation.
    private(set) var allUpperBounds: [Int64]
    private(set) var upperBoundRanges: [Range<Int>]

    /// The exponential bucket indices of the durations perfgate accepts by default, 1 ns to a day.
    static let exponentialIndices = ExponentialBuckets.index(nanoseconds: 1)...ExponentialBuckets.index(nanoseconds: 86_400_000_000_000)

    /// The seed's layouts for every family.
    package static let seed = BucketLayouts(overrides: [:])

    /// The seed's layouts with some families replaced.
    package init(overrides: [HistogramMetric: BucketLayout]) {
        layouts = HistogramMetric.allCases.map { overrides[$0] ?? .default(for: $0) }
        classicByExponential = layouts.flatMap(Self.classicByExponential(of:))
        allUpperBounds = layouts.flatMap(\.upperBounds)
        upperBoundRanges = []
        for layout in layouts {
            let start = upperBoundRanges.last?.upperBound ?? 0
            upperBoundRanges.append(start..<(start + layout.upperBounds.count))
        }
    }

    /// The table of one layout. The exponential index of a duration never decreases as the
    /// duration grows, so an exponential bucket below the one holding a bound `b` holds only
    /// values up to `b`, and one above it only values past `b`.
    private static func classicByExponential(of layout: BucketLayout) -> [Int8] {
        let boundIndices = layout.upperBounds.map { $0 > 0 ? ExponentialBuckets.index(nanoseconds: $0) : Int32.min }
        return exponentialIndices.map { index in
            boundIndices.contains(index) ? -1 : Int8(boundIndices.count { $0 < index })
        }
    }

    /// Runs `body` with a reader of the table that finds a value's classic bucket from its
    /// exponential index, reached once for a loop over many values.
    @inline(__always)
    package func withClassicByExponential<T>(_ body: (ClassicByExponential) throws -> T) rethrows -> T {
        try classicByExponential.withUnsafeBufferPointer { table in
            try body(ClassicByExponential(table: table, width: Self.exponentialIndices.count))
        }
    }

    /// Reads `BucketLayouts`' table of classic buckets by exponential index.
    package struct ClassicByExponential {
        let table: UnsafeBufferPointer<Int8>
        let width: Int

        /// The bucket of `metric` holding every value of exponential bucket `index`; nil when the
        /// bucket holds one of the family's bounds (or lies past the table), so the bounds decide.
        @inline(__always)
        package func bucket(of metric: HistogramMetric, exponentialIndex index: Int32) -> Int? {
            let offset = Int(index) - Int(BucketLayouts.exponentialIndices.lowerBound)
            guard offset >= 0, offset < width else { return nil }
            let bucket = table[metric.rawValue * width + offset]
            return bucket < 0 ? nil : Int(bucket)
        }
    }

    package static func == (left: BucketLayouts, right: BucketLayouts) -> Bool {
        left.layouts == right.layouts
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(layouts)
    }

    /// The layout of a family.
    package subscript(metric: HistogramMetric) -> BucketLayout {
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
