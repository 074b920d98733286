import NIOCore

/// One metric family's part of the page: its name, for ordering, and how to write it.
package struct ExpositionFamily {
    /// The family name; the page is sorted by it.
    package let name: String
    /// Writes the family's header and samples.
    package let write: (inout ExpositionWriter) -> Void

    /// A family and its writer.
    package init(name: String, write: @escaping (inout ExpositionWriter) -> Void) {
        self.name = name
        self.write = write
    }
}

/// Assembles a `/metrics` page from families, sorted by name so the output is stable, in either format.
package enum ExpositionPage {
    /// The page of `families`, ordered by family name, in the buffer a response sends. A
    /// `capacity` near the page's size saves the copies and page faults of growing a
    /// multi-megabyte buffer.
    package static func render(_ families: [ExpositionFamily], capacity: Int = 16_384, format: ExpositionWriter.Format = .text) -> ByteBuffer {
        var writer = ExpositionWriter(capacity: capacity, format: format)
        for family in families.sorted(by: { $0.name < $1.name }) {
            family.write(&writer)
        }
        return writer.page
    }
}

/// A histogram series ready to write: labels rendered once, counts copied out of the live state.
package struct HistogramSample: Sendable {
    /// The series.
    package var key: SeriesKey
    /// Its labels, rendered.
    package var labels: RenderedLabels
    /// Its cumulative counts.
    package var counts: HistogramCounts

    /// A sample of a series.
    package init(key: SeriesKey, labels: RenderedLabels, counts: HistogramCounts) {
        self.key = key
        self.labels = labels
        self.counts = counts
    }
}

/// The seed's five families at one instant, copied out of the live state for rendering.
package struct SeedMetricsSnapshot: Sendable {
    /// Series per histogram family.
    package var histograms: [HistogramMetric: [HistogramSample]]
    /// Stage shares per endpoint.
    package var shares: [StageShare]
    /// The width of the `stage_percentage` window, in minutes, for its help text.
    package var shareWindowMinutes: Int64
    /// The bucket layouts.
    package var layouts: BucketLayouts
    /// True when each family's samples are already in `SeriesKey` order (the live state keeps
    /// them so); otherwise they are sorted when written.
    package var inOrder: Bool

    /// A snapshot from its parts.
    package init(
        histograms: [HistogramMetric: [HistogramSample]], shares: [StageShare], shareWindowMinutes: Int64, layouts: BucketLayouts,
        inOrder: Bool = false
    ) {
        self.inOrder = inOrder
        self.histograms = histograms
        self.shares = shares
        self.shareWindowMinutes = shareWindowMinutes
        self.layouts = layouts
    }

    /// About how many bytes the families will take, to size the page's buffer.
    package var estimatedBytes: Int {
        var total = 16_384
        for (metric, samples) in histograms {
            let lines = layouts[metric].bucketCount + 2
            let perLine = metric.name.utf8.count + 32
            for index in samples.indices { total += lines * (samples[index].labels.bytes.count + perLine) }
        }
        return total + shares.count * 3 * 96
    }

    /// The five families, each ready to write.
    package func families() -> [ExpositionFamily] {
        var families = HistogramMetric.allCases.map { metric in
            let samples = inOrder ? histograms[metric] ?? [] : (histograms[metric] ?? []).sorted { $0.key < $1.key }
            let parts = HistogramLineParts(name: metric.name, boundLabels: layouts[metric].boundLabels)
            return ExpositionFamily(name: metric.name) { writer in
                writer.header(name: metric.name, help: metric.help, kind: .histogram)
                writer.histograms(parts, samples)
            }
        }
        let shares = self.shares
        let window = DurationText.format(seconds: shareWindowMinutes * 60)
        families.append(
            ExpositionFamily(name: "stage_percentage") { writer in
                writer.header(
                    name: "stage_percentage",
                    help: "Share of each stage group in the endpoint's total stage time over the last \(window), in percent (0-100).",
                    kind: .gauge
                )
                for share in shares {
                    for (group, value) in zip(StageGroup.allCases, share.percentages) {
                        let labels = RenderedLabels([(name: "stage", value: group.rawValue), (name: "endpoint", value: share.endpoint)])
                        writer.sample(name: "stage_percentage", labels: labels, value: value)
                    }
                }
            }
        )
        return families
    }
}
