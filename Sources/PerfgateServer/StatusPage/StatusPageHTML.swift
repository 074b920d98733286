import PerfgateCore

/// Renders the status page: one self-contained HTML document (inline styles, inline SVG charts,
/// a few lines of script to refresh it, marked by a nonce), readable without JavaScript.
enum StatusPageHTML {
    /// The whole page; `nonce` marks its one script as the page's own, for the
    /// Content-Security-Policy that runs no other.
    static func page(_ report: StatusReport, nonce: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <link rel="icon" href="data:,">
        <title>perfgate · where the time goes</title>
        <style>\(style)</style>
        </head>
        <body>
        <header>
        <h1>perfgate</h1>
        <nav aria-label="window">\(report.windows.map { link($0, current: report.window) }.joined(separator: " "))</nav>
        </header>
        <main id="status" data-window="\(report.window.rawValue)">
        \(main(report))
        </main>
        <footer>perfgate \(escape(report.health.version)) · <a href="/metrics">/metrics</a> · <a href="/v1/trends?metric=backend_ttfb_seconds&amp;by=provider,model">/v1/trends</a></footer>
        <script nonce="\(nonce)">\(script)</script>
        </body>
        </html>

        """
    }

    /// The part that refreshes: everything between the header and the footer.
    static func main(_ report: StatusReport) -> String {
        [
            "<p class=\"updated\">Last \(report.window.label), up to <time datetime=\"\(RFC3339.format(report.now))\">\(clock(report.now)) UTC</time>; refreshes every 10 s.</p>",
            stages(report),
            latency(report),
            slowest(report),
            health(report),
        ].joined(separator: "\n")
    }

    // MARK: Sections

    private static func stages(_ report: StatusReport) -> String {
        var html = "<section id=\"stages\"><h2>Where the time goes, per endpoint</h2>"
        if report.stageBars.isEmpty {
            return html + "<p class=\"empty\">No stage timings in this window yet. Post some to <code>/v1/events</code>.</p></section>"
        }
        html += "<div class=\"legend\">" + (StatusReport.StageGroup.allCases.map { ($0.name, segmentClass($0)) } + [("custom stage", segmentClass(nil))]).map {
            "<span><i class=\"seg \($0.1)\"></i>\($0.0)</span>"
        }.joined() + "</div>"
        for bar in report.stageBars {
            let summary = bar.segments.map { "\($0.name) \(percent($0.percent))" }.joined(separator: ", ")
            html += "<div class=\"stage-row\" data-endpoint=\"\(escape(bar.endpoint))\"><div class=\"endpoint\">\(label(bar.endpoint))</div>"
            html += "<div class=\"bar\" role=\"img\" aria-label=\"\(escape(summary))\">"
            for segment in bar.segments {
                html += "<span class=\"seg \(segmentClass(segment.group))\" style=\"width:\(cssPercent(segment.percent))\" data-stage=\"\(escape(segment.name))\" data-percent=\"\(cssNumber(segment.percent))\" title=\"\(escape(segment.name)): \(percent(segment.percent)), \(seconds(segment.seconds)) in total\"></span>"
            }
            html += "</div><div class=\"shares\">" + bar.segments.map { "\(escape($0.name)) <b>\(percent($0.percent))</b>" }.joined(separator: " · ") + "</div></div>"
        }
        return html + "</section>"
    }

    private static func latency(_ report: StatusReport) -> String {
        var html = "<section id=\"latency\"><h2>Backend TTFB and streaming, per provider and model</h2>"
        guard !report.pairs.isEmpty else {
            return html + "<p class=\"empty\">No backend timings in this window yet.</p></section>"
        }
        html += "<div class=\"scroll\"><table><thead><tr><th>provider</th><th>model</th><th class=\"num\">TTFB p50</th><th class=\"num\">p95</th><th class=\"num\">p99</th><th>TTFB p95</th>"
        html += "<th class=\"num\">streaming p50</th><th class=\"num\">p95</th><th class=\"num\">p99</th><th>streaming p95</th><th>TTFB p95 vs 1 h ago</th></tr></thead><tbody>"
        let listed = report.listedPairs
        for pair in listed {
            html += "<tr data-provider=\"\(escape(pair.provider))\" data-model=\"\(escape(pair.model))\"\(pair.degrading ? " class=\"degrading\"" : "")>"
            html += "<td>\(label(pair.provider))</td><td>\(label(pair.model))</td>"
            html += percentileCells(pair.ttfb, thresholds: (2, 3))
            html += "<td>\(sparkline(pair.ttfbChart, name: "TTFB p95"))</td>"
            html += percentileCells(pair.streaming, thresholds: (1.5, 2.5))
            html += "<td>\(sparkline(pair.streamingChart, name: "streaming p95"))</td>"
            html += "<td>\(trend(pair))</td></tr>"
        }
        html += "</tbody></table></div>"
        if listed.count < report.pairs.count {
            html += "<p class=\"muted\">\(report.pairs.count - listed.count) quieter pairs are not listed (the degrading ones always are); ask <a href=\"/v1/trends?metric=backend_ttfb_seconds&amp;by=provider,model\">/v1/trends</a> for all of them.</p>"
        }
        return html + "</section>"
    }

    private static func slowest(_ report: StatusReport) -> String {
        let rows = report.slowest
        var html = "<section id=\"slowest\"><h2>Top 10 slowest by backend TTFB p95</h2>"
        guard !rows.isEmpty else { return html + "<p class=\"empty\">Nothing yet.</p></section>" }
        let top = rows.first!.ttfb!.p95
        html += "<ol class=\"ranking\">"
        for pair in rows {
            let p95 = pair.ttfb!.p95
            html += "<li data-provider=\"\(escape(pair.provider))\" data-model=\"\(escape(pair.model))\"><span class=\"who\">\(label(pair.provider)) / \(label(pair.model))</span>"
            html += "<span class=\"meter\"><i class=\"\(level(p95, thresholds: (2, 3)))\" style=\"width:\(cssPercent(top > 0 ? p95 / top * 100 : 0))\"></i></span><b>\(seconds(p95))</b></li>"
        }
        return html + "</ol></section>"
    }

    private static func health(_ report: StatusReport) -> String {
        let health = report.health
        let rejected = health.rejected.isEmpty ? "none" : health.rejected.map { "\(escape($0.reason)) \($0.count)" }.joined(separator: ", ")
        let items: [(String, String, String)] = [
            ("events-per-second", "events/s (last 5 min)", number(health.eventsPerSecond, digits: health.eventsPerSecond < 10 ? 2 : 1)),
            ("accepted", "events accepted", String(health.acceptedEvents)),
            ("rejected", "events rejected, by reason", rejected),
            ("series", "series", String(health.series)),
            ("store", "store size", bytes(health.storeBytes)),
            ("uptime", "uptime", DurationText.format(seconds: health.uptimeSeconds)),
            ("version", "version", escape(health.version)),
            ("ready", "ready for writes", health.unready.map { "no: " + escape($0) } ?? "yes"),
            ("corrupt", "damaged store rows", health.corruptRows == 0 ? "none" : "\(health.corruptRows) skipped, their counts lost (perfgate_store_corrupt_rows_total)<ul class=\"hints\">"
                + health.corruptExamples.map { "<li>\(escape($0))</li>" }.joined() + "</ul>"),
            ("otlp", "OTLP spans", health.otlpSpans == 0 ? "none received" : health.otlpHints.isEmpty
                ? "\(health.otlpSpans) received, all usable" : "\(health.otlpSpans) received<ul class=\"hints\">" + health.otlpHints.map { "<li>\(escape($0))</li>" }.joined() + "</ul>"),
        ]
        return "<section id=\"health\"><h2>Ingest health</h2><dl>"
            + items.map { "<div data-item=\"\($0.0)\"><dt>\($0.1)</dt><dd>\($0.2)</dd></div>" }.joined()
            + "</dl></section>"
    }

    // MARK: Pieces

    private static func link(_ window: StatusWindow, current: StatusWindow) -> String {
        window == current
            ? "<a aria-current=\"page\" href=\"/?window=\(window.rawValue)\">\(window.label)</a>"
            : "<a href=\"/?window=\(window.rawValue)\">\(window.label)</a>"
    }

    private static func percentileCells(_ figures: StatusReport.Percentiles?, thresholds: (Double, Double)) -> String {
        guard let figures else { return "<td class=\"num\">—</td><td class=\"num\">—</td><td class=\"num\">—</td>" }
        return [figures.p50, figures.p95, figures.p99].map { "<td class=\"num \(level($0, thresholds: thresholds))\">\(seconds($0))</td>" }.joined()
    }

    private static func trend(_ pair: StatusReport.PairRow) -> String {
        guard let change = pair.change, let previous = pair.previousTTFB else {
            return "<span class=\"muted\">not enough events to compare</span>"
        }
        let sign = change >= 0 ? "+" : "−"
        let text = "\(sign)\(number(abs(change) * 100, digits: 0))% from \(seconds(previous))"
        return pair.degrading
            ? "<span class=\"bad\" data-degrading=\"true\" title=\"more than \(number(StatusReport.comparison.threshold * 100, digits: 0))% above an hour earlier\">▲ \(text)</span>" : "<span>\(text)</span>"
    }

    /// A line of the values over the window; gaps where a step had no events.
    static func sparkline(_ values: [Double?], name: String) -> String {
        let width = 100.0
        let height = 28.0
        let top = values.compactMap { $0 }.max() ?? 0
        let step = values.count > 1 ? width / Double(values.count - 1) : 0
        var lines: [String] = []
        var current: [String] = []
        for (index, value) in values.enumerated() {
            guard let value else {
                if !current.isEmpty { lines.append(current.joined(separator: " ")) }
                current = []
                continue
            }
            let y = top > 0 ? height - 2 - (value / top) * (height - 4) : height - 2
            current.append("\(cssNumber(Double(index) * step)),\(cssNumber(y))")
        }
        if !current.isEmpty { lines.append(current.joined(separator: " ")) }
        let points = values.map { $0.map(cssNumber) ?? "" }.joined(separator: ",")
        let drawn = lines.map { line in
            line.contains(" ") ? "<polyline points=\"\(line)\"/>" : "<circle cx=\"\(line.split(separator: ",")[0])\" cy=\"\(line.split(separator: ",")[1])\" r=\"1.5\"/>"
        }.joined()
        return "<svg class=\"spark\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"\(escape(name)) over the window, at most \(seconds(top))\" data-points=\"\(points)\">\(drawn)</svg>"
    }

    private static func segmentClass(_ group: StatusReport.StageGroup?) -> String {
        switch group {
        case .frontend: "seg-frontend"
        case .backend: "seg-backend"
        case .streaming: "seg-streaming"
        case nil: "seg-custom"
        }
    }

    private static func level(_ value: Double, thresholds: (warning: Double, critical: Double)) -> String {
        value > thresholds.critical ? "bad" : value > thresholds.warning ? "warn" : "ok"
    }

    // MARK: Formatting

    /// `text` as HTML text or a quoted attribute value: each character that could end either, or
    /// start markup, written as a reference.
    ///
    /// Escaped per Unicode scalar, never per `Character`: a grapheme cluster such as `"` followed
    /// by a combining mark (U+0338) is one `Character` that is not `"`, yet HTML reads its quote.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.unicodeScalars.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            case "`": escaped += "&#96;"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// A label value as text: escaped, and isolated so that bidirectional controls in it cannot
    /// reorder the text around it.
    static func label(_ text: String) -> String {
        "<bdi>" + escape(text) + "</bdi>"
    }

    /// Three significant digits or so: `975 ms`, `48.2 ms`, `2.89 s`, `12.4 s`.
    static func seconds(_ value: Double) -> String {
        if value < 1 {
            let milliseconds = value * 1000
            return number(milliseconds, digits: milliseconds >= 100 ? 0 : milliseconds >= 10 ? 1 : 2) + " ms"
        }
        return number(value, digits: value >= 10 ? 1 : 2) + " s"
    }

    static func percent(_ value: Double) -> String {
        number(value, digits: value < 1 ? 2 : 1) + "%"
    }

    static func number(_ value: Double, digits: Int = 3) -> String {
        guard value.isFinite else { return "—" }
        let scale = pow10(digits)
        let rounded = (value * scale).rounded() / scale
        if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int(rounded)) }
        var text = String(rounded)
        if text.contains("e") { text = String(Int(rounded.rounded())) }
        return text
    }

    private static func pow10(_ digits: Int) -> Double {
        (0..<digits).reduce(1.0) { value, _ in value * 10 }
    }

    private static func cssNumber(_ value: Double) -> String {
        number(value, digits: 3)
    }

    private static func cssPercent(_ value: Double) -> String {
        cssNumber(max(0, min(100, value))) + "%"
    }

    private static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return number(value, digits: unit == 0 ? 0 : 1) + " " + units[unit]
    }

    private static func clock(_ time: Timestamp) -> String {
        let text = RFC3339.format(time)
        // 2026-11-29T09:30:12.345Z → 09:30:12
        guard let t = text.firstIndex(of: "T") else { return text }
        return String(text[text.index(after: t)...].prefix(8))
    }
}
