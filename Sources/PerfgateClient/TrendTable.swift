import Foundation

/// Renders a `/v1/trends` answer as a table for a terminal.
public enum TrendTable {
    /// The table, or nil when `json` is not a trends answer.
    public static func render(_ json: Data) -> String? {
        guard let answer = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any],
            let metric = answer["metric"] as? String, let groups = answer["groups"] as? [[String: Any]]
        else { return nil }
        let quantile = (answer["quantile"] as? Double).map { "p" + Self.number($0 * 100) } ?? "quantile"
        let window = answer["window"] as? String ?? "?"
        let offset = answer["offset"] as? String ?? "?"
        let by = answer["by"] as? [String] ?? []
        var lines = ["\(metric) \(quantile) over the last \(window), against \(offset) earlier"]
        guard !groups.isEmpty else {
            lines.append("no series match")
            return lines.joined(separator: "\n") + "\n"
        }
        var rows: [[String]] = [(by.isEmpty ? ["series"] : by) + ["now", "\(offset) ago", "change", "status"]]
        for group in groups {
            let labels = group["labels"] as? [String: String] ?? [:]
            let current = (group["current"] as? [String: Any])?["quantile"] as? Double
            let previous = (group["previous"] as? [String: Any])?["quantile"] as? Double
            let change = (group["change"] as? Double).map { ($0 >= 0 ? "+" : "") + Self.number($0 * 100) + "%" } ?? "—"
            let status: String
            if group["status"] as? String == "insufficient_data" {
                status = "insufficient data: " + (group["reason"] as? String ?? "")
            } else {
                status = group["degrading"] as? Bool == true ? "DEGRADING" : "ok"
            }
            let names = by.isEmpty ? ["all"] : by.map { labels[$0] ?? "" }
            rows.append(names + [Self.seconds(current), Self.seconds(previous), change, status])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            lines.append(cells.joined(separator: "  "))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func seconds(_ value: Double?) -> String {
        guard let value else { return "—" }
        return value < 1 ? number(value * 1000) + "ms" : number(value) + "s"
    }

    private static func number(_ value: Double) -> String {
        let rounded = (value * 1000).rounded() / 1000
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(format: "%.4g", rounded)
    }
}
