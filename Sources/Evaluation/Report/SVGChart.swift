import Foundation

/// Charts drawn as inline SVG, so a report is one self-contained page: no plotting tool,
/// no script, no network.
public enum SVGChart {
    static let width = 640.0, height = 300.0
    static let margin = (left: 64.0, right: 16.0, top: 36.0, bottom: 56.0)
    static let palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]

    /// One bar per entry with an interval whisker where given (e.g. a 95% interval).
    public static func bars(title: String, unit: String, entries: [(label: String, value: Double, lower: Double?, upper: Double?)])
        -> String
    {
        let top = niceCeiling(entries.map { max($0.value, $0.upper ?? $0.value) }.max() ?? 1)
        let plotWidth = width - margin.left - margin.right
        let plotHeight = height - margin.top - margin.bottom
        func y(_ v: Double) -> Double { margin.top + plotHeight * (1 - min(max(v / top, 0), 1)) }
        var svg = header(title) + axes(top: top, unit: unit, format: { formatted($0) })
        let slot = plotWidth / Double(max(entries.count, 1))
        let barWidth = min(60, slot * 0.6)
        for (index, entry) in entries.enumerated() {
            let x = margin.left + slot * (Double(index) + 0.5)
            let color = palette[index % palette.count]
            svg += rect(x: x - barWidth / 2, y: y(entry.value), width: barWidth, height: y(0) - y(entry.value), fill: color)
            if let lower = entry.lower, let upper = entry.upper {
                svg += line(x, y(lower), x, y(upper)) + line(x - 6, y(lower), x + 6, y(lower)) + line(x - 6, y(upper), x + 6, y(upper))
            }
            svg += text(x: x, y: y(entry.value) - 6, formatted(entry.value), anchor: "middle", size: 11)
            svg += text(x: x, y: height - margin.bottom + 16, entry.label, anchor: "middle", size: 11)
        }
        return svg + "</svg>\n"
    }

    /// Lines through (x, y) points, one per series, with a legend.
    public static func lines(title: String, xLabel: String, yLabel: String, series: [(name: String, points: [(x: Double, y: Double)])])
        -> String
    {
        let all = series.flatMap(\.points)
        let xs = all.map(\.x)
        let ys = all.map(\.y)
        let xMin = xs.min() ?? 0
        let xMax = max(xs.max() ?? 1, xMin + 1)
        let yMin = min(0, ys.min() ?? 0)
        let yTop = niceCeiling(ys.max() ?? 1)
        let plotWidth = width - margin.left - margin.right
        let plotHeight = height - margin.top - margin.bottom
        func px(_ x: Double) -> Double { margin.left + plotWidth * (x - xMin) / (xMax - xMin) }
        func py(_ y: Double) -> Double { margin.top + plotHeight * (1 - (y - yMin) / max(yTop - yMin, 1e-12)) }
        var svg = header(title) + axes(top: yTop, unit: yLabel, format: { formatted($0) })
        svg += text(x: margin.left + plotWidth / 2, y: height - 12, xLabel, anchor: "middle", size: 11)
        svg += text(x: margin.left, y: height - margin.bottom + 16, formatted(xMin), anchor: "middle", size: 10)
        svg += text(x: margin.left + plotWidth, y: height - margin.bottom + 16, formatted(xMax), anchor: "middle", size: 10)
        for (index, entry) in series.enumerated() where !entry.points.isEmpty {
            let color = palette[index % palette.count]
            let path = entry.points.map { "\(number(px($0.x))),\(number(py($0.y)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>\n"
            for point in entry.points where entry.points.count <= 40 {
                svg += "<circle cx=\"\(number(px(point.x)))\" cy=\"\(number(py(point.y)))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            let legendY = margin.top + 14 * Double(index)
            svg += rect(x: width - margin.right - 130, y: legendY - 8, width: 10, height: 10, fill: color)
            svg += text(x: width - margin.right - 115, y: legendY + 1, entry.name, anchor: "start", size: 11)
        }
        return svg + "</svg>\n"
    }

    // MARK: Pieces

    static func header(_ title: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\">\n"
            + "<title>\(escaped(title))</title>\n"
            + text(x: width / 2, y: 20, title, anchor: "middle", size: 14)
    }

    static func axes(top: Double, unit: String, format: (Double) -> String) -> String {
        let plotHeight = height - margin.top - margin.bottom
        var svg =
            line(margin.left, margin.top, margin.left, margin.top + plotHeight)
            + line(margin.left, margin.top + plotHeight, width - margin.right, margin.top + plotHeight)
        for tick in 0...4 {
            let value = top * Double(tick) / 4
            let y = margin.top + plotHeight * (1 - Double(tick) / 4)
            svg +=
                "<line x1=\"\(number(margin.left - 4))\" y1=\"\(number(y))\" "
                + "x2=\"\(number(width - margin.right))\" y2=\"\(number(y))\" stroke=\"#e0e0e0\"/>\n"
            svg += text(x: margin.left - 8, y: y + 4, format(value), anchor: "end", size: 10)
        }
        let middle = margin.top + plotHeight / 2
        return svg
            + "<text x=\"14\" y=\"\(number(middle))\" font-size=\"11\" text-anchor=\"middle\" "
            + "transform=\"rotate(-90 14 \(number(middle)))\">\(escaped(unit))</text>\n"
    }

    static func rect(x: Double, y: Double, width: Double, height: Double, fill: String) -> String {
        "<rect x=\"\(number(x))\" y=\"\(number(y))\" width=\"\(number(width))\" height=\"\(number(max(height, 0)))\" fill=\"\(fill)\"/>\n"
    }

    static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double) -> String {
        "<line x1=\"\(number(x1))\" y1=\"\(number(y1))\" x2=\"\(number(x2))\" y2=\"\(number(y2))\" stroke=\"#333\"/>\n"
    }

    static func text(x: Double, y: Double, _ content: String, anchor: String, size: Int) -> String {
        "<text x=\"\(number(x))\" y=\"\(number(y))\" font-size=\"\(size)\" text-anchor=\"\(anchor)\">\(escaped(content))</text>\n"
    }

    /// 1, 2 or 5 times a power of ten, at least `value`: round axis ends.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 && value.isFinite else { return 1 }
        let power = pow(10, floor(log10(value)))
        return [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= value * (1 - 1e-12) }!
    }

    static func number(_ value: Double) -> String { String(format: "%.1f", value) }

    static func formatted(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e9
            ? String(format: "%.0f", value)
            : abs(value) >= 100
                ? String(format: "%.0f", value) : abs(value) >= 10 ? String(format: "%.1f", value) : String(format: "%.3g", value)
    }

    /// Text safe inside XML elements and attributes.
    public static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
